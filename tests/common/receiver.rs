//! An alert receiver on 127.0.0.1: records every body it is sent, and can
//! fail or hang on purpose.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use serde_json::Value;

/// A receiver that records every body; the first `fail_first` requests get 500.
pub struct Receiver {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<Value>>>,
    pub attempts: Arc<AtomicUsize>,
}

pub async fn receiver(fail_first: usize, hang: bool) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let attempts: Arc<AtomicUsize> = Arc::default();
    let (b, a) = (bodies.clone(), attempts.clone());
    let app = Router::new().fallback(move |body: axum::body::Bytes| {
        let (b, a) = (b.clone(), a.clone());
        async move {
            let n = a.fetch_add(1, Ordering::SeqCst);
            if hang {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if n < fail_first {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            if let Ok(value) = serde_json::from_slice::<Value>(&body) {
                b.lock().unwrap().push(value);
            }
            StatusCode::NO_CONTENT
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { url, bodies, attempts }
}

impl Receiver {
    /// The first notification sent with `status` (`firing`, `resolved`),
    /// waited for up to `within`.
    pub async fn first(&self, status: &str, within: Duration) -> Value {
        super::eventually(&format!("a {status} notification"), within, || {
            let (bodies, status) = (self.bodies.clone(), status.to_string());
            async move {
                bodies
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|b| b["status"] == status.as_str())
                    .cloned()
            }
        })
        .await
    }

    /// The status of every notification received, in order.
    pub fn statuses(&self) -> Vec<String> {
        let bodies = self.bodies.lock().unwrap();
        bodies
            .iter()
            .map(|b| b["status"].as_str().unwrap_or("").to_string())
            .collect()
    }
}
