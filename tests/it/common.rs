//! Shared helpers: spawn the demo server on 127.0.0.1:0 and build clients.
