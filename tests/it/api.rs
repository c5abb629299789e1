//! The versioned REST API (CONTRACT.md section 4) and its error answers.

use serde_json::json;

use crate::common::{assert_error, bearer, json, spawn_app};

#[tokio::test]
async fn v1_lists_seeded_users() {
    let s = spawn_app().await;
    let res = s.client.get(s.url("/api/v1/users")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(
        body["users"][0],
        json!({"user_id": "user1", "name": "John", "version": "v1"})
    );
    assert_eq!(body["users"][1]["name"], "Jane");
}

#[tokio::test]
async fn v2_user_has_profile_and_rfc3339_time() {
    let s = spawn_app().await;
    let res = s
        .client
        .get(s.url("/api/v2/users/user2"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["user_id"], "user2");
    assert_eq!(body["version"], "v2");
    assert_eq!(body["profile"]["name"], "Jane");
    let created = body["profile"]["created_at"].as_str().unwrap();
    // RFC 3339: 2026-11-25T19:10:34Z
    assert_eq!(created.len(), 20, "{created}");
    assert_eq!(&created[4..5], "-");
    assert_eq!(&created[10..11], "T");
    assert!(created.ends_with('Z'));
}

#[tokio::test]
async fn v2_pagination_bounds() {
    let s = spawn_app().await;
    let get = |q: &str| s.client.get(s.url(&format!("/api/v2/users{q}"))).send();

    let body = json(get("").await.unwrap()).await;
    assert_eq!(
        body["pagination"],
        json!({"page": 1, "per_page": 20, "total": 2})
    );

    let body = json(get("?page=2&per_page=1").await.unwrap()).await;
    assert_eq!(body["users"].as_array().unwrap().len(), 1);
    assert_eq!(body["users"][0]["user_id"], "user2");

    let body = json(get("?page=9&per_page=100").await.unwrap()).await;
    assert_eq!(body["users"], json!([]));
    assert_eq!(body["pagination"]["total"], 2);

    for bad in [
        "?per_page=0",
        "?per_page=101",
        "?page=0",
        "?page=abc",
        "?per_page=-1",
    ] {
        let body = assert_error(get(bad).await.unwrap(), 400, "VALIDATION_ERROR").await;
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains("page"), "{bad}: {msg}");
    }
}

#[tokio::test]
async fn unknown_id_resource_and_path_are_404() {
    let s = spawn_app().await;
    for path in [
        "/api/v1/users/user999",
        "/api/v1/users/notanid",
        "/api/v2/posts/post999",
        "/api/v1/widgets",
        "/nope",
        "/api",
    ] {
        let res = s.client.get(s.url(path)).send().await.unwrap();
        assert_error(res, 404, "NOT_FOUND").await;
    }
}

#[tokio::test]
async fn unsupported_version_is_400() {
    let s = spawn_app().await;
    for path in ["/api/v3/users", "/api/v0/users/user1", "/api/latest"] {
        let res = s.client.get(s.url(path)).send().await.unwrap();
        let body = assert_error(res, 400, "UNSUPPORTED_VERSION").await;
        assert!(body["message"].as_str().unwrap().contains("v1"));
    }
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let s = spawn_app().await;
    let res = s.client.patch(s.url("/api/v1/users")).send().await.unwrap();
    let allow = res.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert_error(res, 405, "METHOD_NOT_ALLOWED").await;
}

#[tokio::test]
async fn create_read_update_delete_user() {
    let s = spawn_app().await;
    let token = bearer("writer", &["read", "write"]);
    let res = s
        .client
        .post(s.url("/api/v2/users"))
        .bearer_auth(&token)
        .json(&json!({"name": "Ann", "email": "ann@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let created = json(res).await;
    let id = created["user_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v2/users/{id}"));

    let res = s.client.get(s.url(&location)).send().await.unwrap();
    assert_eq!(json(res).await["profile"]["email"], "ann@example.com");

    let res = s
        .client
        .put(s.url(&format!("/api/v1/users/{id}")))
        .bearer_auth(&token)
        .json(&json!({"name": "Anne"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["name"], "Anne");
    let res = s
        .client
        .get(s.url(&format!("/api/v1/users/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(json(res).await["name"], "Anne");

    let res = s
        .client
        .delete(s.url(&format!("/api/v1/users/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = s.client.get(s.url(&location)).send().await.unwrap();
    assert_error(res, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn posts_round_trip_in_both_versions() {
    let s = spawn_app().await;
    let token = bearer("writer", &["write"]);
    let res = s
        .client
        .post(s.url("/api/v1/posts"))
        .bearer_auth(&token)
        .json(&json!({"author_id": "user1", "title": "Hello", "body": "First post"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let post = json(res).await;
    let id = post["id"].as_str().unwrap();
    for v in ["v1", "v2"] {
        let res = s
            .client
            .get(s.url(&format!("/api/{v}/posts/{id}")))
            .send()
            .await
            .unwrap();
        let got = json(res).await;
        assert_eq!(got["title"], "Hello");
        assert_eq!(got["author_id"], "user1");
    }
    let list = json(s.client.get(s.url("/api/v2/posts")).send().await.unwrap()).await;
    assert_eq!(list["pagination"]["total"], 1);
    let list = json(s.client.get(s.url("/api/v1/posts")).send().await.unwrap()).await;
    assert_eq!(list["posts"][0]["id"], *id);
    assert!(list.get("pagination").is_none());
}

#[tokio::test]
async fn malformed_json_is_400_naming_the_problem() {
    let s = spawn_app().await;
    let token = bearer("writer", &["write"]);
    let send = |body: &'static str| {
        s.client
            .post(s.url("/api/v1/users"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let body = assert_error(send("{\"name\": ").await.unwrap(), 400, "VALIDATION_ERROR").await;
    assert!(
        body["message"].as_str().unwrap().contains("malformed JSON"),
        "{body}"
    );

    let body = assert_error(send("{}").await.unwrap(), 400, "VALIDATION_ERROR").await;
    assert!(body["message"].as_str().unwrap().contains("name"), "{body}");

    let body = assert_error(
        send("{\"name\": 5}").await.unwrap(),
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("invalid type"),
        "{body}"
    );

    let body = assert_error(
        send("{\"name\": \"\"}").await.unwrap(),
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().starts_with("name"),
        "{body}"
    );

    let body = assert_error(
        send("{\"name\": \"A\", \"email\": \"nope\"}")
            .await
            .unwrap(),
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().starts_with("email"),
        "{body}"
    );

    let res = s
        .client
        .post(s.url("/api/v1/users"))
        .bearer_auth(&token)
        .body("{\"name\": \"A\"}")
        .send()
        .await
        .unwrap();
    let body = assert_error(res, 400, "VALIDATION_ERROR").await;
    assert!(
        body["message"].as_str().unwrap().contains("Content-Type"),
        "{body}"
    );
}

#[tokio::test]
async fn post_with_unknown_author_is_400() {
    let s = spawn_app().await;
    let res = s
        .client
        .post(s.url("/api/v2/posts"))
        .bearer_auth(bearer("writer", &["write"]))
        .json(&json!({"author_id": "user404", "title": "t", "body": "b"}))
        .send()
        .await
        .unwrap();
    let body = assert_error(res, 400, "VALIDATION_ERROR").await;
    assert!(body["message"].as_str().unwrap().starts_with("author_id"));
}

#[tokio::test]
async fn perf_does_the_seed_workload() {
    let s = spawn_app().await;
    let res = s.client.get(s.url("/api/perf")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let header: f64 = res.headers()["x-processing-time"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = json(res).await;
    let ms = body["processing_time_ms"].as_f64().unwrap();
    assert!(ms >= 5.0, "includes the 5 ms wait: {ms}");
    assert!((header - ms).abs() < 0.01);
}
