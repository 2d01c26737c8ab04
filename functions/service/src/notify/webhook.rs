//! The signed webhook (the CRM-sync path): `POST {"events": [...]}` with at
//! most [`MAX_BATCH`] events, `X-Churn-Signature: sha256=<hex>` (HMAC-SHA256
//! of the exact body, keyed by `CHURN_NOTIFY_WEBHOOK_SECRET`) and
//! `X-Churn-Delivery: <id>` (the same for a retry of the same batch, so a
//! receiver can drop a duplicate). docs/CONTRACTS.md shows a receiver that
//! verifies the signature.

use super::event::{hex, RiskEvent};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Most events in one request.
pub const MAX_BATCH: usize = 100;
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-churn-signature";
/// The delivery id header.
pub const DELIVERY_HEADER: &str = "x-churn-delivery";

/// `sha256=<hex HMAC-SHA256 of body keyed by secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` under `secret` (compared in
/// constant time): what a receiver does.
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(sig) = unhex(hex_sig) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// `dlv_` and 32 hex digits of a hash of the batch's event ids.
pub fn delivery_id(events: &[RiskEvent]) -> String {
    let mut h = Sha256::new();
    for e in events {
        h.update(e.id.as_bytes());
        h.update(b"\n");
    }
    format!("dlv_{}", hex(&h.finalize()[..16]))
}

/// The request body of a batch.
pub fn body(events: &[RiskEvent]) -> Bytes {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        events: &'a [RiskEvent],
    }
    Bytes::from(serde_json::to_vec(&Body { events }).unwrap_or_default())
}

/// The headers of a batch's request.
pub fn headers(secret: &str, body: &[u8], events: &[RiskEvent]) -> Vec<(&'static str, String)> {
    vec![
        (SIGNATURE_HEADER, signature(secret, body)),
        (DELIVERY_HEADER, delivery_id(events)),
        (
            "user-agent",
            format!("churn-risk/{}", env!("CARGO_PKG_VERSION")),
        ),
    ]
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let sig = signature("k", b"{}");
        assert!(verify("k", b"{}", &sig));
        assert!(!verify("other", b"{}", &sig));
        assert!(!verify("k", b"{ }", &sig));
        assert!(!verify("k", b"{}", "sha1=00"));
    }
}
