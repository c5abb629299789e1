//! Room in a response's header map for what the crosscut layers add.

use http::HeaderMap;

/// Headers the crosscut layers may add to one response between them: nine security headers, four
/// RateLimit fields, two connection counters, the request id, up to four CORS fields.
// Only the security headers size their template with it; a build without them has no user.
#[cfg_attr(not(feature = "security-headers"), allow(dead_code))]
pub(crate) const STACK_HEADERS: usize = 20;

/// Headers a response through the whole stack is given room for at its one growth: the stack's
/// and a handler's few. 24 is exactly what a map of 32 slots holds; one more would double it.
const ROOM: usize = 24;

/// Makes room for `additional` more headers; when that takes a growth, grows once to hold a
/// whole stack's response.
///
/// A handler's response usually starts with a map sized for a few headers; each layer inserting
/// its own then made it grow (rehash and copy) up to three times per response, which a profile
/// under load put at about 2 % of the server's CPU. The first layer that would overflow the map
/// pays one larger growth and the others find room; a layer used alone whose headers fit grows
/// nothing.
///
/// The growth is sized for [`ROOM`] headers in all, not for the stack's twenty on top of what the
/// map holds: by the time a layer grows the map, the layers inside it have already added theirs,
/// and counting them twice doubled the map (64 slots and room for 48 entries, 5 KiB per
/// response, for the 19 headers the demo sends). A response with many headers of its own may
/// grow once more.
pub(crate) fn make_room(map: &mut HeaderMap, additional: usize) {
    if map.len() + additional > map.capacity() {
        map.reserve(additional.max(ROOM.saturating_sub(map.len())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderName, HeaderValue};

    #[test]
    fn headers_that_fit_cost_no_growth() {
        let mut map = HeaderMap::new();
        map.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        let capacity = map.capacity();
        make_room(&mut map, 1);
        assert_eq!(map.capacity(), capacity);
        make_room(&mut map, capacity);
        assert!(map.capacity() > STACK_HEADERS, "{}", map.capacity());
    }

    #[test]
    fn one_growth_holds_the_whole_stack() {
        let mut map = HeaderMap::new();
        map.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        make_room(&mut map, STACK_HEADERS);
        let capacity = map.capacity();
        assert!(capacity > STACK_HEADERS, "{capacity}");
        for i in 0..STACK_HEADERS {
            make_room(&mut map, 1);
            let name = HeaderName::try_from(format!("x-h{i}")).unwrap();
            map.insert(name, HeaderValue::from_static("1"));
        }
        assert_eq!(map.capacity(), capacity, "no second growth");
    }

    #[test]
    fn layers_inside_the_grower_are_not_counted_twice() {
        // As the demo's answers reach the first layer that grows the map: the handler's two
        // headers and the rate limiter's four, then the rest of the stack one layer at a time.
        let mut map = HeaderMap::new();
        for i in 0..6 {
            let name = HeaderName::try_from(format!("x-h{i}")).unwrap();
            map.insert(name, HeaderValue::from_static("1"));
        }
        make_room(&mut map, 2);
        let capacity = map.capacity();
        assert_eq!(capacity, ROOM, "one map of 32 slots, not 64");
        for i in 6..2 + STACK_HEADERS {
            make_room(&mut map, 1);
            let name = HeaderName::try_from(format!("x-h{i}")).unwrap();
            map.insert(name, HeaderValue::from_static("1"));
        }
        assert_eq!(map.capacity(), capacity, "no second growth");
    }
}
