//! A request body from prepared events: `{"events":[...]}` around their JSON text as captured
//! (never re-serialised, so a resend is byte for byte the same event), gzip-compressed above a
//! size, and halved when the server answers 413.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;

/// `{"events":[]}`.
pub(crate) const BODY_OVERHEAD: usize = 13;
/// The server's event bound per request; `Config::validate` keeps the setting within it.
pub(crate) const MAX_BATCH_EVENTS_BOUND: usize = 1_000;

/// The JSON body of a batch of events.
pub(crate) fn body<'a>(events: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let events = events.into_iter();
    let mut body = Vec::with_capacity(BODY_OVERHEAD + events.size_hint().0 * 1024);
    body.extend_from_slice(b"{\"events\":[");
    for (i, event) in events.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event);
    }
    body.extend_from_slice(b"]}");
    body
}

/// The bytes to send and whether they are gzip-compressed: compressed when larger than
/// `gzip_above`, at the fastest level (most of the saving on JSON, a fraction of the CPU of
/// the default level, which matters to a caller sharing its cores with the SDK).
pub(crate) fn encode(body: Vec<u8>, gzip_above: Option<usize>) -> (Bytes, bool) {
    match gzip_above {
        Some(limit) if body.len() > limit => {
            let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
            // Writing into a Vec cannot fail; if it somehow did, the plain body still works.
            match gz.write_all(&body).and_then(|()| gz.finish()) {
                Ok(compressed) => (Bytes::from(compressed), true),
                Err(_) => (Bytes::from(body), false),
            }
        }
        _ => (Bytes::from(body), false),
    }
}

/// A batch the server found too large, in two (the first half keeps the extra one).
pub(crate) fn halves<T>(mut batch: Vec<T>) -> (Vec<T>, Vec<T>) {
    let second = batch.split_off(batch.len().div_ceil(2));
    (batch, second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_body_wraps_the_events_as_sent() {
        let events: [&[u8]; 2] = [b"{\"a\":1}", b"{\"b\":[1, 2]}"];
        let body = body(events);
        assert_eq!(body, b"{\"events\":[{\"a\":1},{\"b\":[1, 2]}]}");
        assert_eq!(super::body([]).len(), BODY_OVERHEAD);
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(parsed["events"][1]["b"][1], 2);
    }

    #[test]
    fn bodies_over_the_threshold_are_gzipped_and_decode_to_the_same() {
        let big = body(std::iter::repeat_n(
            &b"{\"k\":\"vvvvvvvvvvvvvvvvvvvv\"}"[..],
            300,
        ));
        let (sent, gzipped) = encode(big.clone(), Some(4096));
        assert!(gzipped && sent.len() < big.len() / 4);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&sent[..])
            .read_to_end(&mut back)
            .expect("gzip");
        assert_eq!(back, big);

        let (small, gzipped) = encode(b"{}".to_vec(), Some(4096));
        assert_eq!((&small[..], gzipped), (&b"{}"[..], false));
        let (never, gzipped) = encode(big.clone(), None);
        assert_eq!((never.len(), gzipped), (big.len(), false));
    }

    #[test]
    fn halves_cover_the_batch_in_order() {
        assert_eq!(halves(vec![1, 2, 3, 4, 5]), (vec![1, 2, 3], vec![4, 5]));
        assert_eq!(halves(vec![1, 2]), (vec![1], vec![2]));
        assert_eq!(halves(vec![1]), (vec![1], vec![]));
    }
}
