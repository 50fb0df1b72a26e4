//! A small server-sent-events parser (the subset LLM APIs use): `event:` and `data:`
//! fields, comments, events dispatched on a blank line, `\n`, `\r\n` or `\r` line ends.
//! Bytes are fed as they arrive; a line split across chunks (even inside a UTF-8
//! character) is reassembled.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when absent (as the spec says).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    /// The last byte seen was `\r` (a following `\n` belongs to the same line end).
    after_cr: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in chunk {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.buffer);
                    if let Some(event) = self.line(&String::from_utf8_lossy(&line)) {
                        events.push(event);
                    }
                }
                _ => self.buffer.push(byte),
            }
        }
        events
    }

    /// Whether bytes of an unfinished event are pending (a stream that ends here was cut).
    pub fn has_pending(&self) -> bool {
        !self.buffer.is_empty() || !self.data.is_empty()
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event = None;
                return None;
            }
            let data = std::mem::take(&mut self.data).join("\n");
            let event = self.event.take().unwrap_or_else(|| "message".to_string());
            return Some(SseEvent { event, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => self.data.push(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_anywhere() {
        let text = "event: ping\ndata: {\"type\":\"ping\"}\n\n: comment\r\nevent: content_block_delta\r\ndata: {\"t\":\"é\"}\r\n\r\ndata: a\ndata: b\n\n";
        let bytes = text.as_bytes();
        for split in 0..bytes.len() {
            let mut parser = SseParser::new();
            let mut events = parser.feed(&bytes[..split]);
            events.extend(parser.feed(&bytes[split..]));
            assert_eq!(
                events,
                vec![
                    SseEvent {
                        event: "ping".into(),
                        data: "{\"type\":\"ping\"}".into()
                    },
                    SseEvent {
                        event: "content_block_delta".into(),
                        data: "{\"t\":\"é\"}".into()
                    },
                    SseEvent {
                        event: "message".into(),
                        data: "a\nb".into()
                    },
                ],
                "split at {split}"
            );
            assert!(!parser.has_pending());
        }
    }

    #[test]
    fn unfinished_event_is_pending() {
        let mut parser = SseParser::new();
        assert!(parser.feed(b"event: message_delta\ndata: {\"x\":").is_empty());
        assert!(parser.has_pending());
    }
}
