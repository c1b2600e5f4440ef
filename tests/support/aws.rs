//! SQS and S3 on moto for the tests, through the real SDK clients: a queue (with its
//! dead-letter queue) and a bucket of each test's own, removed when the test ends.

use std::time::Duration;

use eis_runtime::aws as clients;

use crate::{clean_up, stack_var, unique};

/// AWS SDK configuration from the environment (moto through AWS_ENDPOINT_URL).
pub async fn sdk() -> aws_config::SdkConfig {
    stack_var("AWS_ENDPOINT_URL");
    clients::sdk_config(3, Duration::from_secs(5)).await
}

/// A queue of the test's own with a dead-letter queue after `max_receives` receives; both are
/// deleted with this value.
pub struct TestQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
    pub dlq_url: String,
}

impl TestQueue {
    pub async fn create(max_receives: u32, visibility_secs: u32) -> TestQueue {
        let client = clients::sqs_client(&sdk().await);
        let name = unique("eis-t-").replace('_', "-");
        let dlq_url = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .expect("create dlq")
            .queue_url
            .expect("dlq url");
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("dlq attributes")
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("dlq arn");
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receives.to_string(),
        });
        let url = client
            .create_queue()
            .queue_name(&name)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                redrive.to_string(),
            )
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                visibility_secs.to_string(),
            )
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        TestQueue {
            client,
            url,
            dlq_url,
        }
    }

    /// Receives until the queue answers empty; returns the bodies (and deletes nothing).
    pub async fn receive_all(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        loop {
            let out = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return all;
            }
            all.extend(messages);
        }
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let (client, urls) = (
            self.client.clone(),
            [self.url.clone(), self.dlq_url.clone()],
        );
        clean_up(async move {
            for url in urls {
                let _ = client.delete_queue().queue_url(url).send().await;
            }
        });
    }
}

/// Empties and deletes a test's bucket when dropped.
pub struct BucketGuard {
    client: aws_sdk_s3::Client,
    name: String,
}

impl Drop for BucketGuard {
    fn drop(&mut self) {
        let (s3, bucket) = (self.client.clone(), self.name.clone());
        clean_up(async move {
            // Every version and delete marker too: a versioned bucket is not empty without.
            loop {
                let Ok(page) = s3.list_object_versions().bucket(&bucket).send().await else {
                    break;
                };
                let versions = page.versions().iter().map(|v| (v.key(), v.version_id()));
                let markers = page
                    .delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id()));
                let all: Vec<_> = versions.chain(markers).collect();
                if all.is_empty() {
                    break;
                }
                for (key, version) in all {
                    let _ = s3
                        .delete_object()
                        .bucket(&bucket)
                        .set_key(key.map(str::to_string))
                        .set_version_id(version.map(str::to_string))
                        .send()
                        .await;
                }
            }
            let _ = s3.delete_bucket().bucket(&bucket).send().await;
        });
    }
}

/// A bucket of the test's own: its client, its name, and the guard that removes it.
pub async fn test_bucket() -> (aws_sdk_s3::Client, String, BucketGuard) {
    let client = clients::s3_client(&sdk().await);
    let name = unique("eis-t-").replace('_', "-");
    client
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create bucket");
    let guard = BucketGuard {
        client: client.clone(),
        name: name.clone(),
    };
    (client, name, guard)
}

/// (visible, in flight) messages of a queue.
pub async fn depth(queue: &TestQueue, url: &str) -> (u64, u64) {
    let attrs = queue
        .client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        )
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    let get = |name: aws_sdk_sqs::types::QueueAttributeName| {
        attrs
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    };
    (
        get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
        get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Every event of every message on `url` (received, not deleted); quarantine messages are
/// left out.
pub async fn queued_events(queue: &TestQueue, url: &str) -> Vec<eis_contract::Event> {
    let mut events = Vec::new();
    for m in queue.receive_all(url).await {
        let body = m.body().unwrap_or_default();
        if let eis_handoff::message::Message::Events(e) =
            eis_handoff::message::decode(body).expect("decodes")
        {
            events.extend(e);
        }
    }
    events
}
