//! Room in a response's header map for what the crosscut layers add.

use http::HeaderMap;

/// Headers the crosscut layers may add to one response between them (nine security headers, four
/// RateLimit fields, two connection counters, the request id, up to four CORS fields) and then
/// some.
pub(crate) const STACK_HEADERS: usize = 20;

/// Makes room for `additional` more headers; when that takes a growth, grows once to hold every
/// header the stack adds.
///
/// A handler's response usually starts with a map sized for a few headers; each layer inserting
/// its own then made it grow (rehash and copy) up to three times per response, which a profile
/// under load put at about 2 % of the server's CPU. The first layer that would overflow the map
/// pays one larger growth and the others find room; a layer used alone whose headers fit grows
/// nothing.
pub(crate) fn make_room(map: &mut HeaderMap, additional: usize) {
    if map.len() + additional > map.capacity() {
        map.reserve(STACK_HEADERS.max(additional));
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
}
