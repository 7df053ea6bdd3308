//! A browser stand-in for the web console's tests: plain reqwest that
//! follows no redirect, keeps the session cookie by hand and posts forms as
//! a browser would, with or without the page's CSRF token. Requests to the
//! signed API are signed here from the format in docs/SECURITY.md, not by
//! the node's own client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};
use reqwest::header::HeaderMap;
use sha2::{Digest, Sha256};

/// The `Authorization` header of a signed API request.
pub fn signed(key: &SigningKey, node: &str, method: &str, path: &str, body: &[u8]) -> String {
    let ts_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let nonce: [u8; 16] = rand::random();
    let text = format!(
        "AMOSKYS-API-1\n{node}\n{method}\n{path}\n{}\n{ts_ms}\n{}",
        hex::encode(Sha256::digest(body)),
        hex::encode(nonce)
    );
    format!(
        "Amoskys-Ed25519 key={},ts={ts_ms},nonce={},sig={}",
        hex::encode(key.verifying_key().to_bytes()),
        hex::encode(nonce),
        hex::encode(key.sign(text.as_bytes()).to_bytes())
    )
}

/// A one-time sign-in path (`/login?token=…`) for `key`'s operator.
pub async fn link(addr: SocketAddr, node: &str, key: &SigningKey) -> String {
    let path = "/api/v1/console/login";
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("authorization", signed(key, node, "POST", path, b""))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(resp.status(), 200, "a sign-in link is issued");
    let v: serde_json::Value = resp.json().await.expect("JSON");
    v["path"].as_str().expect("a path").to_owned()
}

/// A page as the browser got it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The value of the first `name="csrf" value="…"` field.
    pub fn csrf(&self) -> Option<String> {
        let at = self.body.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
        let end = self.body[at..].find('"')?;
        Some(self.body[at..at + end].to_owned())
    }
}

/// One browser: its own cookie jar of one cookie.
#[derive(Debug, Clone)]
pub struct Browser {
    pub addr: SocketAddr,
    http: reqwest::Client,
    pub cookie: Option<String>,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            cookie: None,
        }
    }

    /// A browser signed in as `key`'s operator through a fresh link.
    pub async fn signed_in(addr: SocketAddr, node: &str, key: &SigningKey) -> Self {
        let mut b = Self::new(addr);
        let path = link(addr, node, key).await;
        let p = b.get(&path).await;
        assert_eq!(p.status, 303, "the link signs in: {}", p.body);
        assert_eq!(p.header("location"), "/");
        assert!(b.cookie.is_some(), "a session cookie is set");
        b
    }

    fn keep_cookie(&mut self, headers: &HeaderMap) {
        if let Some(set) = headers.get("set-cookie").and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap_or_default();
            self.cookie = pair
                .split_once('=')
                .filter(|(_, v)| !v.is_empty())
                .map(|_| pair.to_owned());
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", c),
            None => req,
        };
        let resp = req.send().await.expect("the node answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.keep_cookie(&headers);
        let body = resp.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    /// A `GET`'s status, the body left unread (a live stream).
    pub async fn open(&self, path: &str) -> u16 {
        let mut req = self.http.get(format!("http://{}{path}", self.addr));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        req.send()
            .await
            .expect("the node answers")
            .status()
            .as_u16()
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("http://{}{path}", self.addr));
        self.send(req).await
    }

    /// Posts `fields` as a form, adding `csrf` when given, with the
    /// `Origin` a browser on the node's page sends.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)], csrf: Option<&str>) -> Page {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            form.append_pair(k, v);
        }
        if let Some(t) = csrf {
            form.append_pair("csrf", t);
        }
        let req = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", format!("http://{}", self.addr))
            .body(form.finish());
        self.send(req).await
    }

    /// A post with any headers the caller sets (a forged one).
    pub async fn post_raw(&mut self, path: &str, body: String, origin: Option<&str>) -> Page {
        let mut req = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        self.send(req).await
    }

    /// This session's CSRF token, read from the overview page's form.
    pub async fn csrf(&mut self) -> String {
        let p = self.get("/").await;
        assert_eq!(p.status, 200, "{}", p.body);
        p.csrf().expect("the page has a CSRF field")
    }
}
