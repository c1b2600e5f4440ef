//! CloudFormation's custom-resource protocol, as the `SchemaMigrations` resource of template.yaml
//! uses it: the request CloudFormation sends (asynchronously) to the migrator, the answer the
//! migrator PUTs to the request's pre-signed response URL, and the time kept for that answer.
//! Pure: no I/O (`respond` sends the answer).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The same for every answer: CloudFormation replaces a resource whose physical id changes,
/// and the schema is one resource for the stack's whole life.
pub const PHYSICAL_ID: &str = "eis-database-migrations";

/// Kept before the function's deadline for the answer: the migrations stop (FAILED, "out of
/// time") when less than this remains, so that CloudFormation hears before the function ends.
pub const ANSWER_RESERVE: Duration = Duration::from_secs(20);

/// Longest the PUT to the response URL may take.
pub const PUT_TIMEOUT: Duration = Duration::from_secs(15);

/// CloudFormation refuses an answer over 4 096 bytes; the reason is the only long field, and
/// the ids it echoes take well under the other half.
pub const MAX_REASON_BYTES: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

/// The fields of a custom-resource request the migrator uses; CloudFormation sends more
/// (ServiceToken, ResourceType, ResourceProperties, …), which are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub request_type: RequestType,
    /// The pre-signed S3 URL that takes the answer.
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
}

impl Request {
    /// Create and Update migrate; Delete does nothing (the schema outlives the stack).
    pub fn migrates(&self) -> bool {
        self.request_type != RequestType::Delete
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Success,
    Failed,
}

/// The answer's body, as CloudFormation reads it from the response URL.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response<'a> {
    pub status: Status,
    pub reason: String,
    pub physical_resource_id: &'static str,
    pub stack_id: &'a str,
    pub request_id: &'a str,
    pub logical_resource_id: &'a str,
    pub no_echo: bool,
}

impl<'a> Response<'a> {
    /// The answer to `request`; the reason is cut to [`MAX_REASON_BYTES`].
    pub fn to(request: &'a Request, status: Status, reason: &str) -> Self {
        Self {
            status,
            reason: cut(reason, MAX_REASON_BYTES),
            physical_resource_id: PHYSICAL_ID,
            stack_id: &request.stack_id,
            request_id: &request.request_id,
            logical_resource_id: &request.logical_resource_id,
            no_echo: false,
        }
    }
}

/// At most `max_bytes` of `text` (UTF-8), cut at a character boundary and marked with "…".
fn cut(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let keep = max_bytes.saturating_sub('…'.len_utf8());
    let end = (0..=keep)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &text[..end])
}

/// How long the migrations may run when `remaining` is left before the function's deadline:
/// all but [`ANSWER_RESERVE`] (nothing when less than that remains).
pub fn work_budget(remaining: Duration) -> Duration {
    remaining.saturating_sub(ANSWER_RESERVE)
}

/// How long the PUT may take when `remaining` is left: [`PUT_TIMEOUT`], or what remains.
pub fn put_timeout(remaining: Duration) -> Duration {
    remaining.min(PUT_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The request of events/migrator-custom-resource.json.
    fn fixture() -> serde_json::Value {
        let text = include_str!("../../../events/migrator-custom-resource.json");
        serde_json::from_str(text).expect("fixture is JSON")
    }

    #[test]
    fn a_request_keeps_what_the_answer_echoes_and_ignores_the_rest() {
        let request = Request::deserialize(fixture()).expect("a request");
        assert_eq!(request.request_type, RequestType::Create);
        assert!(request.migrates());
        assert!(request.response_url.starts_with("https://"));
        assert_eq!(request.logical_resource_id, "SchemaMigrations");
        for kind in ["Update", "Delete"] {
            let mut value = fixture();
            value["RequestType"] = json!(kind);
            let request = Request::deserialize(value).expect(kind);
            assert_eq!(request.migrates(), kind == "Update");
        }
        let mut unknown = fixture();
        unknown["RequestType"] = json!("Replace");
        assert!(Request::deserialize(unknown).is_err());
        let mut no_url = fixture();
        no_url.as_object_mut().map(|o| o.remove("ResponseURL"));
        assert!(Request::deserialize(no_url).is_err());
    }

    #[test]
    fn the_answer_echoes_the_request_and_says_why() {
        let request = Request::deserialize(fixture()).expect("a request");
        let body = Response::to(&request, Status::Failed, "database_error: 42P01");
        assert_eq!(
            serde_json::to_value(&body).expect("json"),
            json!({
                "Status": "FAILED",
                "Reason": "database_error: 42P01",
                "PhysicalResourceId": PHYSICAL_ID,
                "StackId": request.stack_id,
                "RequestId": request.request_id,
                "LogicalResourceId": "SchemaMigrations",
                "NoEcho": false,
            })
        );
    }

    #[test]
    fn a_long_reason_is_cut_so_that_the_answer_stays_under_4096_bytes() {
        let request = Request::deserialize(fixture()).expect("a request");
        let reason = "é".repeat(10_000);
        let body =
            serde_json::to_vec(&Response::to(&request, Status::Failed, &reason)).expect("json");
        assert!(body.len() < 4096, "{} bytes", body.len());
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("abcdefgh", 6), "abc…");
        // Never inside a character: "é" is two bytes.
        assert_eq!(cut("éééé", 6), "é…");
    }

    #[test]
    fn the_answer_keeps_its_reserve_before_the_deadline() {
        let s = Duration::from_secs;
        assert_eq!(work_budget(s(300)), s(280));
        assert_eq!(work_budget(ANSWER_RESERVE), Duration::ZERO);
        assert_eq!(work_budget(s(5)), Duration::ZERO);
        assert_eq!(put_timeout(s(300)), PUT_TIMEOUT);
        assert_eq!(put_timeout(s(3)), s(3));
        assert!(PUT_TIMEOUT < ANSWER_RESERVE, "the PUT fits in the reserve");
    }
}
