//! What travels over `/ws/chat`: the client's frame, the validated message the server broadcasts,
//! the error frame, and the HTML escaping applied to user text.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The most characters (Unicode scalar values, not bytes) of `content` the server keeps.
pub const MAX_CONTENT_CHARS: usize = 1000;

/// The longest `username`, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

/// The kind of a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageType {
    /// Plain text.
    Text,
    /// A reference to an image (the content is whatever the client sent, escaped).
    Image,
    /// A reference to a file.
    File,
    /// A notice from the server (join, leave, missed messages). Clients may not send it.
    System,
}

/// A frame as a client sends it.
#[derive(Debug, Deserialize)]
struct Incoming {
    username: String,
    content: String,
    message_type: MessageType,
}

/// A message as the server broadcasts it. `username` and `content` are HTML-escaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Unique id (UUID v4) set by the server.
    pub id: String,
    /// Who sent it: the token's `sub`, `anonymous_NNNNNNNN`, or `system`.
    pub user_id: String,
    /// The display name the client chose, HTML-escaped.
    pub username: String,
    /// The text, at most [`MAX_CONTENT_CHARS`] characters before escaping, HTML-escaped.
    pub content: String,
    /// Unix seconds, set by the server.
    pub timestamp: u64,
    /// The kind of message.
    pub message_type: MessageType,
}

/// `user_id` and `username` of server notices.
const SYSTEM_ID: &str = "system";
const SYSTEM_NAME: &str = "System";

impl ChatMessage {
    /// A server notice with `text` as its content (escaped like any other content, since it can
    /// quote a user id taken from a token).
    pub fn system(text: &str) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: SYSTEM_ID.to_owned(),
            username: SYSTEM_NAME.to_owned(),
            content: escape_html(text),
            timestamp: unix_now(),
            message_type: MessageType::System,
        }
    }

    /// Validates a client's text frame and turns it into the message to broadcast.
    ///
    /// # Errors
    ///
    /// A human-readable reason (it goes into the `INVALID_MESSAGE` error frame) when the frame is not
    /// JSON of the expected shape, the username is not 1-64 characters, the content is empty or the
    /// type is `System`.
    pub fn from_client(frame: &str, user_id: &str) -> Result<Self, String> {
        let incoming: Incoming =
            serde_json::from_str(frame).map_err(|e| format!("invalid message: {e}"))?;
        if incoming.message_type == MessageType::System {
            return Err("message_type System is reserved for the server".to_owned());
        }
        let name_len = incoming.username.chars().count();
        if incoming.username.trim().is_empty() || name_len > MAX_USERNAME_CHARS {
            return Err(format!(
                "username must be 1-{MAX_USERNAME_CHARS} characters and not blank"
            ));
        }
        if incoming.content.trim().is_empty() {
            return Err("content must not be empty".to_owned());
        }
        // Cut before escaping: cutting after could split an entity (`&am`), and the limit is about
        // what the person typed, which is also what the page shows once it decodes the entities.
        let content = match incoming.content.char_indices().nth(MAX_CONTENT_CHARS) {
            Some((cut, _)) => &incoming.content[..cut],
            None => &incoming.content,
        };
        Ok(Self {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_owned(),
            username: escape_html(&incoming.username),
            content: escape_html(content),
            timestamp: unix_now(),
            message_type: incoming.message_type,
        })
    }

    /// The message as the JSON text frame clients receive.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and an enum cannot fail; the fallback keeps this free of unwrap.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The error frame sent to one client: `{"type":"error","code":...,"message":...}`.
#[derive(Debug, Serialize)]
pub struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'a str,
    message: &'a str,
}

impl<'a> ErrorFrame<'a> {
    /// An error frame with `code` (e.g. `INVALID_MESSAGE`, `RATE_LIMIT`) and a human message.
    pub fn new(code: &'a str, message: &'a str) -> Self {
        Self {
            kind: "error",
            code,
            message,
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Escapes `& < > " '` as HTML entities, each character exactly once.
///
/// One pass over the input, so `&` is never re-escaped: the classic bug of replacing `&` after `<`
/// turns `<` into `&amp;lt;`.
///
/// ```
/// use crosscut_demo::chat::escape_html;
/// assert_eq!(escape_html("<script>&"), "&lt;script&gt;&amp;");
/// ```
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_each_character_once() {
        assert_eq!(escape_html("<script>&"), "&lt;script&gt;&amp;");
        assert_eq!(escape_html("&lt;"), "&amp;lt;");
        assert_eq!(escape_html(r#""'"#), "&quot;&#x27;");
        assert_eq!(escape_html("plain é"), "plain é");
    }

    #[test]
    fn content_is_cut_to_1000_characters_before_escaping() {
        let long = "é".repeat(1500);
        let frame = serde_json::json!({"username": "a", "content": long, "message_type": "Text"});
        let msg = ChatMessage::from_client(&frame.to_string(), "u").unwrap();
        assert_eq!(msg.content.chars().count(), 1000);

        let amps = "&".repeat(1001);
        let frame = serde_json::json!({"username": "a", "content": amps, "message_type": "Text"});
        let msg = ChatMessage::from_client(&frame.to_string(), "u").unwrap();
        assert_eq!(msg.content, "&amp;".repeat(1000));
    }

    #[test]
    fn rejects_bad_frames() {
        let cases = [
            "not json",
            r#"{"username":"a","content":"x","message_type":"System"}"#,
            r#"{"username":"","content":"x","message_type":"Text"}"#,
            r#"{"username":"a","content":"","message_type":"Text"}"#,
            r#"{"username":"a","content":"x","message_type":"Video"}"#,
            r#"{"content":"x","message_type":"Text"}"#,
        ];
        for case in cases {
            assert!(ChatMessage::from_client(case, "u").is_err(), "{case}");
        }
        let long_name = "n".repeat(65);
        let frame =
            serde_json::json!({"username": long_name, "content": "x", "message_type": "Text"});
        assert!(ChatMessage::from_client(&frame.to_string(), "u").is_err());
    }

    #[test]
    fn error_frame_shape() {
        let v: serde_json::Value =
            serde_json::from_str(&ErrorFrame::new("RATE_LIMIT", "slow down").to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "error", "code": "RATE_LIMIT", "message": "slow down"})
        );
    }
}
