//! Turning an HTTP request body into JSON bytes: content type, size limit, gzip.
//! (API Gateway's base64-encoded bodies are already decoded by lambda_http.)

use std::io::Read;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use crate::error::ApiError;

/// Reads at most `limit` bytes of JSON. A gzip body is decompressed with the same limit on
/// its decompressed size, read incrementally, so a zip bomb costs at most `limit` bytes.
pub async fn read_json(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let gzip = match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str()) {
        None => false,
        Some(Ok(v)) if v.trim().eq_ignore_ascii_case("identity") || v.trim().is_empty() => false,
        Some(Ok(v)) if v.trim().eq_ignore_ascii_case("gzip") => true,
        Some(Ok(v)) => return Err(ApiError::UnsupportedEncoding(v.to_string())),
        Some(Err(_)) => return Err(ApiError::UnsupportedEncoding("<not ASCII>".into())),
    };
    if let Some(length) = content_length(headers) {
        if length > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
    }
    let raw = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::PayloadTooLarge { limit })
        }
        Err(_) => return Err(ApiError::UnreadableBody),
    };
    if gzip {
        gunzip(&raw, limit)
    } else {
        Ok(raw)
    }
}

fn gunzip(compressed: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(compressed).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|_| ApiError::InvalidGzip)?;
    if out.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// `application/json`, with or without parameters such as charset, or any `+json` type.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(Ok(value)) = headers.get(header::CONTENT_TYPE).map(|v| v.to_str()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    const JSON: (header::HeaderName, &str) = (header::CONTENT_TYPE, "application/json");

    #[tokio::test]
    async fn plain_json_is_returned_as_is() {
        let out = read_json(&headers(&[JSON]), Body::from("{}"), 10)
            .await
            .unwrap();
        assert_eq!(&out[..], b"{}");
    }

    #[tokio::test]
    async fn content_types() {
        for ok in [
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/cloudevents+json",
        ] {
            let h = headers(&[(header::CONTENT_TYPE, ok)]);
            assert!(read_json(&h, Body::from("{}"), 10).await.is_ok(), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded"] {
            let h = headers(&[(header::CONTENT_TYPE, bad)]);
            let err = read_json(&h, Body::from("{}"), 10).await.unwrap_err();
            assert_eq!(err.code(), "unsupported_media_type", "{bad}");
        }
        let err = read_json(&HeaderMap::new(), Body::from("{}"), 10)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unsupported_media_type");
    }

    #[tokio::test]
    async fn body_over_the_limit_is_payload_too_large() {
        let err = read_json(&headers(&[JSON]), Body::from(vec![b' '; 11]), 10)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
        let h = headers(&[JSON, (header::CONTENT_LENGTH, "11")]);
        let err = read_json(&h, Body::from("{}"), 10).await.unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
    }

    #[tokio::test]
    async fn gzip_is_decompressed_within_the_limit() {
        let h = headers(&[JSON, (header::CONTENT_ENCODING, "gzip")]);
        let out = read_json(&h, Body::from(gzip(b"{\"a\":1}")), 100)
            .await
            .unwrap();
        assert_eq!(&out[..], b"{\"a\":1}");
        // 10 MB of zeros compress to ~10 KB: the decompressed size is what counts.
        let bomb = gzip(&vec![0u8; 10_000_000]);
        assert!(bomb.len() < 100_000);
        let err = read_json(&h, Body::from(bomb), 1_000_000)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
        let err = read_json(&h, Body::from("not gzip"), 100)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_gzip");
    }

    #[tokio::test]
    async fn other_encodings_are_refused() {
        let h = headers(&[JSON, (header::CONTENT_ENCODING, "br")]);
        let err = read_json(&h, Body::from("{}"), 10).await.unwrap_err();
        assert_eq!(err.code(), "unsupported_content_encoding");
    }
}
