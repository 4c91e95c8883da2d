//! A Server-Sent Events stream (`GET /v1/events/stream`), read event by event.

use std::time::Duration;

use crate::error::{root_cause, Error, Result};

/// How long a live stream may stay silent before it is taken for dead (the origin sends a
/// keep-alive comment every 15 s).
pub const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(45);

/// One event of the stream: its `id:`, `event:` and `data:` lines (several `data:` lines
/// joined with `\n`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// The events of an open stream, in order.
pub struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
    parser: Parser,
}

impl EventStream {
    pub(crate) fn new(response: reqwest::Response) -> EventStream {
        EventStream {
            response,
            buffer: Vec::new(),
            parser: Parser::default(),
        }
    }

    /// The next event; `None` when the server closed the stream. A stream silent for
    /// [`STREAM_READ_TIMEOUT`] or broken off is an [`Error::Unreachable`]: open it again with
    /// the last event id seen.
    pub async fn next(&mut self) -> Option<Result<SseEvent>> {
        loop {
            while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]);
                if let Some(event) = self.parser.line(line.trim_end_matches('\r')) {
                    return Some(Ok(event));
                }
            }
            let chunk = tokio::time::timeout(STREAM_READ_TIMEOUT, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buffer.extend_from_slice(&bytes),
                Ok(Ok(None)) => return None,
                Ok(Err(e)) => {
                    return Some(Err(Error::Unreachable {
                        url: self.response.url().to_string(),
                        reason: root_cause(&e),
                    }))
                }
                Err(_) => {
                    return Some(Err(Error::Unreachable {
                        url: self.response.url().to_string(),
                        reason: format!(
                            "the stream was silent for {} s",
                            STREAM_READ_TIMEOUT.as_secs()
                        ),
                    }))
                }
            }
        }
    }
}

/// The event being read, line by line (the WHATWG rules: fields, comments, blank line ends it).
#[derive(Default)]
struct Parser {
    event: SseEvent,
    has_data: bool,
}

impl Parser {
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let done = std::mem::take(&mut self.event);
            let had_data = std::mem::take(&mut self.has_data);
            return (had_data || !done.event.is_empty()).then_some(done);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.event.id = Some(value.to_owned()),
            "event" => self.event.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<SseEvent> {
        let mut parser = Parser::default();
        text.split('\n').filter_map(|l| parser.line(l)).collect()
    }

    #[test]
    fn events_are_read_between_blank_lines() {
        let read = events(
            ": keep-alive\n\nid: 7\nevent: stream.opened\ndata: {}\n\n\
             id: 8\nevent: agent.suspended\ndata: {\"a\":\ndata: 1}\n\n: ping\n\n",
        );
        assert_eq!(
            read,
            vec![
                SseEvent {
                    id: Some("7".into()),
                    event: "stream.opened".into(),
                    data: "{}".into()
                },
                SseEvent {
                    id: Some("8".into()),
                    event: "agent.suspended".into(),
                    data: "{\"a\":\n1}".into()
                },
            ]
        );
    }
}
