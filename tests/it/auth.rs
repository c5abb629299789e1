//! JWT auth on the demo's write routes (CONTRACT.md sections 1-3, write routes of section 4):
//! 401 `AUTH_REQUIRED` / `INVALID_TOKEN` with their `WWW-Authenticate` challenges, 403 without
//! `write`, working writes with it, and the tokens the binary itself hands out.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

use crate::common::{
    assert_error, bearer, demo_binary, json, spawn_app, spawn_with, test_config, TEST_SECRET,
};

/// Test-only RSA key pair (copied from `layers/src/auth/test_keys.rs`). Never use it elsewhere.
const RSA_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQCqyK10L+hlblaz
vRzR2GTbeJUfguouAzq9Qs2o4OrBL+qr8InJnsESWUatY4xmOX2pYjnrkE7GDpWi
Kx+mxYg308l30IBNdw01iNAIlV/PxyEDIqCPSIJuUanyesShpTiAfRM4kmyu/g9u
kDwGmEOiUbmWQBF+k8RDQOOKoHrGESncS7eWcGAs24/qOoz0vKPpzbJE+ULPpyk1
tqeJzMEzTQOLW8tLhqP0BPJ7v8jeKbTCifPCRPM9+tjyCzgY88GZHQjybrvsa0jw
YCfrOvEIsH234GgatNIDzAzSPV5R93HifRq+YD6efXyEQct2R/VMI6XxNNUjgWyF
U4jpcZPPAgMBAAECggEABpXoyQyvN6Nqw3vnjcNRlvxONSIIDrsq0NvacLMvn5XN
76W9t8vKjSm/0HWAwfu14p9k4Au3W0AlDqpUCksesWxrc0EpLr4zAQf5Ya4E56Rk
RlSCVX7JzMroX0R9qvAN6Y0pKGrOYcHD7ZMGmt3UlICgmUXM3DvYJccYSc2zaPTL
L5+FeukMChq3G9N6By0RVQ9V0AK+u8mxCOvSnJk/kxdaeGHRzFlgVaM9k9Kci6X7
5jdN4KfttpEqyZlfv1fw8hqWelApwk2w/RCG1HFng09TSqj/FfkLQK7P/Jiof+x6
AHp+xYRm6D6X7SwD9G+BkMpsqzu9QqD6RGj20UtFYQKBgQDxSIC2lUNyzxrZa1dn
9aliFfnLDojAEdKgMw7G4eFyBACvJ5TS9LeZjbjb4Atk7Xid/ufduGmKjj3bj/xf
5gCGC4tJ29ndDtFlxxjM29KkCl2kxigD3vtxNt4cw7+LGo0xQuoUNvVJ4GsTHTim
TARi9pT0ezyTtlnuYvITq5f0oQKBgQC1M15vOZ0AxD3lqcMQd8N3XjgigVPaICpj
KeghtwKS3m9W1LJNu/A24qsNKgLK3h4Dt3CTNvAe+ZBQjnYZ0aIUXM6nG3JNqBYe
PlBMMGyToMGkQNKaZdFUVajvjzHBqqDgi6tYgzaTOiWBlgtgt5SPasfUfo5Dcud7
bW/WF11CbwKBgQC8jRn4lKBGwc2LhjShyvn46o9vvQXkgokEI6IyjSXuQW5/cgD8
8bvgRT3mpSiCUIjnfuGXBJuFaS6xu81O66ARIEhTCXkxJHlCfdnFjSsIggk30JpI
nCIGEQh1lgrDG5amnlHqRiBdAQDryPQSEGmFJIi2nO9zxxZ0EeJ2uKtgwQKBgQCO
1Ss/aZ7FF+viuWq19HH0CiUdrew3KNvAxyvgR66Trxr8yzSx6c90tEA5ZEBHQcdP
Dq6CnO+yuu5zUZjuyTyF6JJNT2lOpYyp0lzhcdpklHePzjk008WqQMul6q5CBwpB
dldesi+25kLiXzAg0RUd6AIVEp15tX2a4a0iidBNqQKBgQCUW8AFo50ONjQ/6g5+
Qq4fyc/1bTA40NFiY44KaEEAY9GhfelmoR81jGOVievq3+S6phTv/ZX2Y8/7ML+d
CNAYPp+Payk0sWIdqVHuOiRQ4vvtV8HiBgO90DIHNrURYsyiPykAFKHDtSK1dxte
PcPTAeAmizTNUboOiJZszIRCsw==
-----END PRIVATE KEY-----
";

const RSA_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqsitdC/oZW5Ws70c0dhk
23iVH4LqLgM6vULNqODqwS/qq/CJyZ7BEllGrWOMZjl9qWI565BOxg6VoisfpsWI
N9PJd9CATXcNNYjQCJVfz8chAyKgj0iCblGp8nrEoaU4gH0TOJJsrv4PbpA8BphD
olG5lkARfpPEQ0DjiqB6xhEp3Eu3lnBgLNuP6jqM9Lyj6c2yRPlCz6cpNbaniczB
M00Di1vLS4aj9ATye7/I3im0wonzwkTzPfrY8gs4GPPBmR0I8m677GtI8GAn6zrx
CLB9t+BoGrTSA8wM0j1eUfdx4n0avmA+nn18hEHLdkf1TCOl8TTVI4FshVOI6XGT
zwIDAQAB
-----END PUBLIC KEY-----
";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// HS256 with the server's secret, any claims.
fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        claims,
        &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
}

fn sign(alg: Algorithm, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("token signs")
}

/// Unpadded base64url, enough to hand-craft tokens jsonwebtoken refuses to make.
fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn write_claims(sub: &str) -> Value {
    json!({"sub": sub, "perms": ["read", "write"], "exp": now() + 3600})
}

/// The tokens the contract says must all be 401 `INVALID_TOKEN`, with a label for messages.
fn invalid_tokens() -> Vec<(&'static str, String)> {
    let good = bearer("user1", &["read", "write"]);
    let (head, rest) = good.split_once('.').expect("three parts");
    let (_, sig) = rest.split_once('.').expect("three parts");
    let reader = bearer("user1", &["read"]);
    let reader_sig = reader.rsplit('.').next().expect("signature");
    let payload = b64url(write_claims("user1").to_string().as_bytes());
    let rsa_private = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).expect("RSA key");
    vec![
        (
            "expired",
            hs256(&json!({"sub": "user1", "perms": ["write"], "exp": now() - 120})),
        ),
        (
            "not yet valid",
            hs256(
                &json!({"sub": "user1", "perms": ["write"], "exp": now() + 3600,
                          "nbf": now() + 600}),
            ),
        ),
        (
            "bad signature (other secret)",
            sign(
                Algorithm::HS256,
                &write_claims("user1"),
                &EncodingKey::from_secret(b"another-secret-that-is-at-least-32-bytes"),
            ),
        ),
        (
            "payload swapped under another token's signature",
            format!("{head}.{payload}.{reader_sig}"),
        ),
        (
            "alg none, empty signature",
            format!("{}.{payload}.", b64url(br#"{"alg":"none","typ":"JWT"}"#)),
        ),
        (
            "alg none, original signature kept",
            format!(
                "{}.{payload}.{sig}",
                b64url(br#"{"alg":"none","typ":"JWT"}"#)
            ),
        ),
        (
            "RS256-signed",
            sign(Algorithm::RS256, &write_claims("user1"), &rsa_private),
        ),
        (
            "HS256 keyed with an RSA public key PEM",
            sign(
                Algorithm::HS256,
                &write_claims("user1"),
                &EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()),
            ),
        ),
        ("HS512 with the right secret", {
            let key = EncodingKey::from_secret(TEST_SECRET.as_bytes());
            sign(Algorithm::HS512, &write_claims("user1"), &key)
        }),
        (
            "no exp",
            hs256(&json!({"sub": "user1", "perms": ["write"]})),
        ),
        ("truncated", good[..good.len() - 6].to_owned()),
        ("cut after the payload", format!("{head}.{payload}")),
        ("garbage", "not-a-jwt".to_owned()),
        ("three garbage parts", "a.b.c".to_owned()),
        (
            "base64 noise",
            format!("{}.{}.{}", b64url(b"x"), b64url(b"y"), b64url(b"z")),
        ),
    ]
}

#[tokio::test]
async fn reads_are_open_and_writes_without_a_token_are_401_auth_required() {
    let s = spawn_app().await;
    let res = s.client.get(s.url("/api/v1/users")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let body = json!({"name": "Nobody"});
    for (method, path) in [
        ("POST", "/api/v1/users"),
        ("POST", "/api/v2/posts"),
        ("PUT", "/api/v2/users/user1"),
        ("DELETE", "/api/v1/users/user2"),
        ("DELETE", "/api/v1/posts/post1"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = s
            .client
            .request(method.clone(), s.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer"),
            "{method} {path}"
        );
        assert_error(res, 401, "AUTH_REQUIRED").await;
    }
    // Another scheme is no bearer credential at all.
    let res = s
        .client
        .post(s.url("/api/v1/users"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "AUTH_REQUIRED").await;

    // Nothing was written.
    let users = json(s.client.get(s.url("/api/v1/users")).send().await.unwrap()).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    let res = s
        .client
        .get(s.url("/api/v1/users/user2"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_wrong_method_is_still_405_not_401() {
    let s = spawn_app().await;
    let res = s
        .client
        .patch(s.url("/api/v1/users/user1"))
        .send()
        .await
        .unwrap();
    assert_error(res, 405, "METHOD_NOT_ALLOWED").await;
}

#[tokio::test]
async fn every_kind_of_invalid_token_is_401_invalid_token() {
    let s = spawn_app().await;
    for (what, token) in invalid_tokens() {
        let res = s
            .client
            .post(s.url("/api/v1/users"))
            .bearer_auth(&token)
            .json(&json!({"name": "Mallory"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some(r#"Bearer error="invalid_token""#),
            "{what}"
        );
        let body = assert_error(res, 401, "INVALID_TOKEN").await;
        // The answer never echoes the token.
        assert!(!body.to_string().contains(&token), "{what}: {body}");
    }
    // None of them wrote anything.
    let users = json(s.client.get(s.url("/api/v1/users")).send().await.unwrap()).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2, "{users}");
}

#[tokio::test]
async fn expiry_within_the_leeway_is_accepted() {
    let s = spawn_app().await;
    let token = hs256(&json!({"sub": "user1", "perms": ["write"], "exp": now() - 5}));
    let res = s
        .client
        .post(s.url("/api/v1/users"))
        .bearer_auth(token)
        .json(&json!({"name": "Late"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_valid_token_without_write_is_403() {
    let s = spawn_app().await;
    for perms in [&["read"][..], &[], &["WRITE", "admin"]] {
        let token = bearer("user1", perms);
        let res = s
            .client
            .post(s.url("/api/v1/users"))
            .bearer_auth(&token)
            .json(&json!({"name": "Reader"}))
            .send()
            .await
            .unwrap();
        assert_error(res, 403, "FORBIDDEN").await;
        let res = s
            .client
            .delete(s.url("/api/v1/users/user1"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_error(res, 403, "FORBIDDEN").await;
    }
    let res = s
        .client
        .get(s.url("/api/v1/users/user1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn with_write_create_update_and_delete_stick() {
    let s = spawn_app().await;
    let token = bearer("user1", &["read", "write"]);

    // Users.
    let res = s
        .client
        .post(s.url("/api/v2/users"))
        .bearer_auth(&token)
        .json(&json!({"name": "Ada", "email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let created = json(res).await;
    let id = created["user_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v2/users/{id}"));
    let read = json(s.client.get(s.url(&location)).send().await.unwrap()).await;
    assert_eq!(read["profile"]["name"], "Ada");
    assert_eq!(read["profile"]["email"], "ada@example.com");

    let res = s
        .client
        .put(s.url(&format!("/api/v1/users/{id}")))
        .bearer_auth(&token)
        .json(&json!({"name": "Ada Lovelace"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let read = json(s.client.get(s.url(&location)).send().await.unwrap()).await;
    assert_eq!(read["profile"]["name"], "Ada Lovelace");

    // Posts: without `author_id` the author is the token's subject.
    let res = s
        .client
        .post(s.url("/api/v1/posts"))
        .bearer_auth(&token)
        .json(&json!({"title": "Hello", "body": "First"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let post = json(res).await;
    assert_eq!(post["author_id"], "user1");
    let post_url = format!("/api/v2/posts/{}", post["id"].as_str().unwrap());
    let res = s
        .client
        .put(s.url(&post_url))
        .bearer_auth(&token)
        .json(&json!({"title": "Hello again", "body": "Edited"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let read = json(s.client.get(s.url(&post_url)).send().await.unwrap()).await;
    assert_eq!(read["title"], "Hello again");
    assert_eq!(read["body"], "Edited");

    // Deletes.
    for path in [post_url.as_str(), &location] {
        let res = s
            .client
            .delete(s.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "{path}");
        let res = s.client.get(s.url(path)).send().await.unwrap();
        assert_error(res, 404, "NOT_FOUND").await;
    }
}

#[tokio::test]
async fn a_post_by_a_subject_that_is_no_user_needs_an_author() {
    let s = spawn_app().await;
    let res = s
        .client
        .post(s.url("/api/v1/posts"))
        .bearer_auth(bearer("ci-bot", &["write"]))
        .json(&json!({"title": "Hello", "body": "x"}))
        .send()
        .await
        .unwrap();
    let body = assert_error(res, 400, "VALIDATION_ERROR").await;
    assert!(
        body["message"].as_str().unwrap().contains("author_id"),
        "{body}"
    );
}

/// Runs `crosscut-demo token ...` with `env`, returning (status, stdout, stderr).
async fn token_subcommand(args: &[&str], secret: Option<&str>) -> (i32, String, String) {
    let bin = tokio::task::spawn_blocking(demo_binary).await.unwrap();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("token")
        .args(args)
        .env_remove("CROSSCUT_JWT_SECRET");
    cmd.env_remove("CROSSCUT_CONFIG");
    if let Some(secret) = secret {
        cmd.env("CROSSCUT_JWT_SECRET", secret);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("token subcommand finishes")
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn a_token_from_the_subcommand_is_accepted_by_a_server_with_the_same_secret() {
    let secret = "subcommand-secret-of-more-than-32-bytes!!";
    let (code, stdout, stderr) = token_subcommand(
        &["--sub", "user2", "--perm", "read,write", "--ttl", "600"],
        Some(secret),
    )
    .await;
    assert_eq!(code, 0, "stderr: {stderr}");
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert_eq!(token.split('.').count(), 3, "{token}");

    let mut config = test_config();
    config.jwt_secret = Some(secret.into());
    let s = spawn_with(config).await;
    let res = s
        .client
        .post(s.url("/api/v1/posts"))
        .bearer_auth(token)
        .json(&json!({"title": "From the CLI", "body": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(json(res).await["author_id"], "user2");

    // The same token against a server with another secret is refused.
    let other = spawn_app().await;
    let res = other
        .client
        .delete(other.url("/api/v1/users/user1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "INVALID_TOKEN").await;

    // `--perm read` gives a token that cannot write.
    let (code, stdout, _) =
        token_subcommand(&["--sub", "user2", "--perm", "read"], Some(secret)).await;
    assert_eq!(code, 0);
    let res = s
        .client
        .delete(s.url("/api/v1/users/user1"))
        .bearer_auth(stdout.trim())
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn the_token_subcommand_without_a_secret_exits_2() {
    let (code, stdout, stderr) = token_subcommand(&["--sub", "x", "--perm", "write"], None).await;
    assert_eq!(code, 2, "stdout: {stdout} stderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("jwt_secret"), "{stderr}");

    let (code, _, stderr) =
        token_subcommand(&["--sub", "x", "--perm", "write"], Some("too-short")).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("jwt_secret"), "{stderr}");
}

#[tokio::test]
async fn without_a_secret_the_server_logs_a_working_demo_token() {
    let bin = tokio::task::spawn_blocking(demo_binary).await.unwrap();
    let mut child = tokio::process::Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env_remove("CROSSCUT_JWT_SECRET")
        .env_remove("CROSSCUT_CONFIG")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();

    // Everything up to the listening line: the warning, the demo token, the address.
    let (mut warning, mut token, mut addr) = (None, None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while addr.is_none() {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("server starts within 30 s")
            .unwrap()
            .expect("stdout open");
        if line.contains("WARN") && line.contains("restart") {
            warning = Some(line);
        } else if line.contains("demo token") {
            let last = line.split_whitespace().last().unwrap_or_default();
            let t: String = last
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect();
            token = Some(t);
        } else if let Some(rest) = line.split("listening on http://").nth(1) {
            let a: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ':'))
                .collect();
            addr = Some(a);
        }
    }
    assert!(warning.is_some(), "no warning about a random secret");
    let token = token.expect("a demo token line before the listening line");
    let addr = addr.unwrap();
    let client = crate::common::client();

    let res = client
        .post(format!("http://{addr}/api/v1/users"))
        .bearer_auth(&token)
        .json(&json!({"name": "Demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // A made-up token still is not.
    let res = client
        .post(format!("http://{addr}/api/v1/users"))
        .bearer_auth(bearer("demo", &["write"]))
        .json(&json!({"name": "Forged"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "INVALID_TOKEN").await;

    // The token appears on that one line only: request logging never repeats it.
    let res = client
        .get(format!("http://{addr}/api/v1/users?x=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Let the background log writer catch up before the process goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.start_kill();
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    })
    .await
    .unwrap_or_default();
    for line in rest {
        assert!(!line.contains(&token), "token logged again: {line}");
    }
}
