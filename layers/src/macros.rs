//! Crate-internal macros.

/// `get_ref`, `get_mut` and `into_inner` for a middleware service whose wrapped service is the
/// field `inner` of type `S`, written once instead of in every layer module.
// Unused when only features without a hand-written service (e.g. `compression`) are on.
#[allow(unused_macros)]
macro_rules! define_inner_service_accessors {
    () => {
        /// The wrapped service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The wrapped service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Unwraps the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
