//! The admin console's sessions and CSRF checks (SPEC §18), over real HTTP on both databases:
//! sign-in exchanges a token for a hashed session, every form needs its CSRF token, a viewer's
//! forged write is refused, sign-out and expiry end a session, and errors are pages.

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{redirect, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::harness::{TestApp, ADMIN};

struct Console<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: Option<String>,
}

struct Page {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The value of `name` set by this answer.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.cookies().into_iter().find_map(|c| {
            c.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap().to_owned())
        })
    }

    /// The CSRF token of the page's first form.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a CSRF field");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    #[track_caller]
    fn assert_page(&self, status: u16, words: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert!(
            self.header("content-type").starts_with("text/html"),
            "{}",
            self.header("content-type")
        );
        assert!(self.body.contains(words), "{words} in {}", self.body);
        assert!(
            !self.body.trim_start().starts_with('{'),
            "never a JSON error"
        );
        assert!(self
            .header("content-security-policy")
            .starts_with("default-src 'none'; script-src 'self'"));
        assert_eq!(self.header("cache-control"), "no-store");
    }
}

impl<'a> Console<'a> {
    fn new(app: &'a TestApp) -> Console<'a> {
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .unwrap();
        Console {
            app,
            client,
            cookie: None,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(cookie) => req.header(COOKIE, cookie),
            None => req,
        };
        let resp = req.send().await.unwrap();
        Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.app.base)))
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(
            self.client
                .post(format!("{}{path}", self.app.base))
                .form(form),
        )
        .await
    }

    /// Signs in with `token`; returns the session secret (the cookie's value).
    async fn sign_in(&mut self, token: &str) -> String {
        let form = self.get("/console/sign-in").await;
        form.assert_page(200, "Admin token");
        let pre = form.set_cookie("vouch_sign_in").expect("a sign-in cookie");
        self.cookie = Some(format!("vouch_sign_in={pre}"));
        let done = self
            .post(
                "/console/sign-in",
                &[("csrf", &form.csrf()), ("token", token)],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert_eq!(done.header("location"), "/console/agents");
        let secret = done.set_cookie("vouch_session").expect("a session cookie");
        let cookie = done
            .cookies()
            .into_iter()
            .find(|c| c.starts_with("vouch_session="))
            .unwrap();
        for attribute in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/console",
            "Max-Age=28800",
        ] {
            assert!(cookie.contains(attribute), "{attribute}: {cookie}");
        }
        assert!(
            !cookie.contains("Secure"),
            "not Secure on loopback: {cookie}"
        );
        self.cookie = Some(format!("vouch_session={secret}"));
        secret
    }
}

fn sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

pub async fn sessions(app: &TestApp) {
    let mut console = Console::new(app);
    // Without a session every page leads to the sign-in.
    let page = console.get("/console/agents").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers.get(LOCATION).unwrap(), "/console/sign-in");

    // The sign-in form has its own CSRF token, bound to its cookie.
    let form = console.get("/console/sign-in").await;
    let pre = form.set_cookie("vouch_sign_in").unwrap();
    let refused = console
        .post(
            "/console/sign-in",
            &[("csrf", &form.csrf()), ("token", ADMIN)],
        )
        .await;
    refused.assert_page(403, "This form has expired");
    console.cookie = Some(format!("vouch_sign_in={pre}"));
    let refused = console
        .post("/console/sign-in", &[("csrf", "forged"), ("token", ADMIN)])
        .await;
    refused.assert_page(403, "This form has expired");
    let wrong = console
        .post(
            "/console/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("token", "vk_admin_not-a-real-token-0123456789"),
            ],
        )
        .await;
    wrong.assert_page(401, "That token is not valid");
    assert!(wrong.set_cookie("vouch_session").is_none());

    // A session is stored hashed, beside the token's hash; the secret is nowhere.
    let secret = console.sign_in(ADMIN).await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM console_sessions WHERE session_hash = '{}' AND token_hash = '{}'",
            sha256(&secret),
            sha256(ADMIN)
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM console_sessions WHERE session_hash = '{secret}' OR token_hash = '{ADMIN}'"
        ))
        .await,
        0
    );
    let agents = console.get("/console/agents").await;
    agents.assert_page(200, "Signed in as");
    assert!(!agents.body.contains(&secret) && !agents.body.contains(ADMIN));

    // Sign-out needs its CSRF token, then ends the session for good.
    let csrf = agents.csrf();
    console
        .post("/console/sign-out", &[("csrf", "nope")])
        .await
        .assert_page(403, "This form has expired");
    let out = console.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out
        .cookies()
        .iter()
        .any(|c| c.starts_with("vouch_session=;") && c.contains("Max-Age=0")));
    assert_eq!(
        console.get("/console/agents").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM console_sessions").await, 0);

    // An expired session is no session.
    let expired = "vk_console_expired-session-secret";
    let past = vouch_core::Timestamp::from_unix_millis(1_000);
    app.store
        .create_session(&sha256(expired), &sha256(ADMIN), past, past)
        .await
        .unwrap();
    console.cookie = Some(format!("vouch_session={expired}"));
    assert_eq!(
        console.get("/console/agents").await.status,
        StatusCode::SEE_OTHER
    );

    // Revoking the token behind a session ends it at once.
    let org = app.org("console-org").await;
    let reply = app
        .post(
            &format!("/v1/orgs/{org}/tokens"),
            ADMIN,
            json!({ "role": "admin", "name": "c" }),
        )
        .await;
    let body = reply.assert_status(201);
    let (token, token_id) = (
        body["token"].as_str().unwrap().to_owned(),
        body["token_id"].as_str().unwrap().to_owned(),
    );
    console.sign_in(&token).await;
    console
        .get("/console/agents")
        .await
        .assert_page(200, "Signed in as");
    app.call(
        reqwest::Method::DELETE,
        &format!("/v1/orgs/{org}/tokens/{token_id}"),
        Some(ADMIN),
        None,
    )
    .await
    .assert_status(200);
    assert_eq!(
        console.get("/console/agents").await.status,
        StatusCode::SEE_OTHER
    );
}

pub async fn csrf_and_viewers(app: &TestApp) {
    let org = app.org("console-csrf").await;
    let (agent, _) = app.agent(&org, "Console Bot").await;
    app.set_status(&agent, "active").await.assert_status(200);
    let status_of = |body: &serde_json::Value| body["status"].as_str().unwrap().to_owned();

    // A viewer sees no write controls, and its forged write is refused by the server.
    let viewer = app.token(&org, "viewer").await;
    let mut console = Console::new(app);
    console.sign_in(&viewer).await;
    let list = console.get("/console/agents").await;
    list.assert_page(200, "Console Bot");
    for control in [
        "Register an agent",
        "name=\"status\" value=",
        "Revoke…",
        "/status\"",
    ] {
        assert!(!list.body.contains(control), "{control} shown to a viewer");
    }
    let detail = console.get(&format!("/console/agents/{agent}")).await;
    detail.assert_page(200, "Capabilities and limits");
    assert!(!detail.body.contains("Change status") && !detail.body.contains("Edit this passport"));
    let forged = console
        .post(
            &format!("/console/agents/{agent}/status"),
            &[
                ("csrf", &list.csrf()),
                ("status", "suspended"),
                ("reason", "forged"),
            ],
        )
        .await;
    forged.assert_page(403, "A viewer token cannot make changes");
    let forged = console
        .post("/console/agents", &[("csrf", &list.csrf()), ("name", "x")])
        .await;
    forged.assert_page(403, "A viewer token cannot make changes");
    assert_eq!(
        status_of(
            app.get(&format!("/v1/agents/{agent}"), ADMIN)
                .await
                .assert_status(200)
        ),
        "active"
    );

    // An admin's form without (or with another session's) CSRF token changes nothing.
    let admin = app.token(&org, "admin").await;
    let mut console = Console::new(app);
    console.sign_in(&admin).await;
    let list = console.get("/console/agents").await;
    assert!(
        list.body.contains("name=\"status\" value=\"suspended\""),
        "{}",
        list.body
    );
    let path = format!("/console/agents/{agent}/status");
    console
        .post(&path, &[("status", "suspended"), ("reason", "no token")])
        .await
        .assert_page(403, "This form has expired");
    console
        .post(&path, &[("csrf", &forged_csrf()), ("status", "suspended")])
        .await
        .assert_page(403, "This form has expired");
    assert_eq!(
        status_of(
            app.get(&format!("/v1/agents/{agent}"), ADMIN)
                .await
                .assert_status(200)
        ),
        "active"
    );

    // With it, one click suspends; revoking needs its confirmation.
    let done = console
        .post(
            &path,
            &[
                ("csrf", &list.csrf()),
                ("status", "suspended"),
                ("reason", "fraud review"),
            ],
        )
        .await;
    done.assert_page(200, "Committed: ");
    assert!(
        done.body
            .contains("the status journal is off on this origin"),
        "{}",
        done.body
    );
    let passport = app.get(&format!("/v1/agents/{agent}"), ADMIN).await;
    let passport = passport.assert_status(200);
    assert_eq!(
        (
            status_of(passport).as_str(),
            passport["status_reason"].as_str()
        ),
        ("suspended", Some("fraud review"))
    );
    console
        .post(
            &path,
            &[
                ("csrf", &list.csrf()),
                ("status", "revoked"),
                ("reason", "r"),
            ],
        )
        .await
        .assert_page(400, "Revoking needs its confirmation");
    console
        .get(&format!("/console/agents/{agent}/revoke"))
        .await
        .assert_page(200, "Revoking is for good");

    // A stale edit says so and saves nothing.
    let form = console.get(&format!("/console/agents/{agent}/edit")).await;
    form.assert_page(200, "Save changes");
    app.patch(
        &format!("/v1/agents/{agent}"),
        ADMIN,
        json!({ "role": "changed elsewhere" }),
    )
    .await
    .assert_status(200);
    let stale = console
        .post(
            &format!("/console/agents/{agent}/edit"),
            &[
                ("csrf", &form.csrf()),
                ("version", "2"),
                ("role", "mine"),
                ("regions", "US"),
            ],
        )
        .await;
    stale.assert_page(412, "Someone changed this passport");
    let role = app.get(&format!("/v1/agents/{agent}"), ADMIN).await;
    assert_eq!(role.assert_status(200)["role"], "changed elsewhere");

    // Errors are pages, never JSON.
    console
        .get("/console/agents/ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70")
        .await
        .assert_page(404, "No such agent");
    let bad = console
        .send(
            console
                .client
                .post(format!("{}{path}", app.base))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("csrf=%ZZ&&status"),
        )
        .await;
    assert!(bad.status.is_client_error());
    assert!(bad.header("content-type").starts_with("text/html"));
}

fn forged_csrf() -> String {
    sha256("another session's csrf")
}

pub async fn pages(app: &TestApp) {
    let org = app.org("console-pages").await;
    let (a, _) = app.agent(&org, "Delegator Bot").await;
    let (b, _) = app.agent(&org, "Delegatee Bot").await;
    for agent in [&a, &b] {
        app.set_status(agent, "active").await.assert_status(200);
    }
    let grant = app
        .post(
            "/v1/delegations",
            ADMIN,
            json!({ "delegator": a, "delegatee": b, "scopes": ["payments.refund"], "ttl_seconds": 3600, "max_depth": 2 }),
        )
        .await;
    let grant = grant.assert_status(201)["delegation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let owner = app.token(&org, "owner").await;
    let mut console = Console::new(app);
    console.sign_in(&owner).await;

    // The passport page: every field, limits in words, its delegations and events.
    let detail = console.get(&format!("/console/agents/{b}")).await;
    detail.assert_page(200, &grant);
    for words in [
        "this agent",
        "payments.refund (depth ≤ 2)",
        "live until",
        "at most 1,000.00 USD per day",
        "draft → active",
        "No deliveries.",
    ] {
        assert!(detail.body.contains(words), "{words} in {}", detail.body);
    }
    // Search and filters, and a filter the API refuses shown as a sentence.
    let found = console
        .get("/console/agents?q=delegatee&status=active")
        .await;
    found.assert_page(200, "Delegatee Bot");
    assert!(!found.body.contains("Delegator Bot"));
    let refused = console.get("/console/agents?capability=Not..Valid").await;
    refused.assert_page(200, "is not a capability id");

    // Tokens: an owner sees its org's (never their secrets), and makes one shown once.
    let tokens = console.get("/console/tokens").await;
    tokens.assert_page(200, "owner");
    assert!(!tokens.body.contains(&owner));
    let made = console
        .post(
            "/console/tokens",
            &[("csrf", &tokens.csrf()), ("name", "ci"), ("role", "viewer")],
        )
        .await;
    made.assert_page(201, "It is shown only now");
    assert!(made.body.contains("vk_admin_"));
    assert_eq!(
        console
            .get("/console/tokens")
            .await
            .body
            .matches("<td>live</td>")
            .count(),
        2
    );

    // The audit log and its chain check.
    console
        .get("/console/audit")
        .await
        .assert_page(200, "Intact: ");
    console
        .get("/console/webhooks")
        .await
        .assert_page(200, "No webhooks yet.");
}

/// The text of the page's `code.secret` (a key shown once).
fn secret_in(page: &Page) -> String {
    let open = "<code class=\"secret\">";
    let at = page.body.find(open).expect("a secret shown") + open.len();
    let rest = &page.body[at..];
    rest[..rest.find("</code>").unwrap()].to_owned()
}

/// The partner ids the page's table lists, in order.
fn partner_rows(page: &Page) -> Vec<String> {
    page.body
        .split("data-partner=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

pub async fn partners(app: &TestApp) {
    let key_rows = |hash: String, revoked: bool| {
        let revoked = if revoked { "NOT NULL" } else { "NULL" };
        format!(
            "SELECT COUNT(*) FROM partner_keys WHERE key_hash = '{hash}' AND revoked_at IS {revoked}"
        )
    };
    let mut console = Console::new(app);
    console.sign_in(ADMIN).await;
    let empty = console.get("/console/partners").await;
    empty.assert_page(200, "No partners yet.");
    assert!(
        empty.body.contains("Add partner") && empty.body.contains("href=\"/console/partners\"")
    );

    // Adding needs the form's CSRF token; a value the API refuses shows the form again.
    let csrf = empty.csrf();
    console
        .post(
            "/console/partners",
            &[("name", "Acme Pay"), ("contact", "a@acme.example")],
        )
        .await
        .assert_page(403, "This form has expired");
    let refused = console
        .post(
            "/console/partners",
            &[
                ("csrf", &csrf),
                ("name", "  "),
                ("contact", "kept@acme.example"),
            ],
        )
        .await;
    refused.assert_page(400, "`name` must not be empty");
    assert!(refused.body.contains("value=\"kept@acme.example\""));
    assert_eq!(app.count("SELECT COUNT(*) FROM partners").await, 0);

    // Added: the key is shown once, and it is the partner's real key.
    let added = console
        .post(
            "/console/partners",
            &[
                ("csrf", &csrf),
                ("name", "Acme Pay"),
                ("contact", "security@acme.example"),
            ],
        )
        .await;
    added.assert_page(201, "Its key is shown only now");
    let key = secret_in(&added);
    assert!(key.starts_with("vk_partner_"), "{key}");
    assert_eq!(app.count(&key_rows(sha256(&key), false)).await, 1);
    let listed = app.get("/v1/partners", ADMIN).await;
    let partner = listed.assert_status(200)["data"][0].clone();
    assert_eq!(
        (
            partner["name"].as_str(),
            partner["contact"].as_str(),
            partner["status"].as_str()
        ),
        (
            Some("Acme Pay"),
            Some("security@acme.example"),
            Some("active")
        )
    );
    let id = partner["partner_id"].as_str().unwrap().to_owned();
    let list = console.get("/console/partners").await;
    list.assert_page(200, "security@acme.example");
    assert_eq!(partner_rows(&list), [id.as_str()]);
    assert!(!list.body.contains(&key), "the key is shown once");

    // Rotating shows the new key once; the old one is refused from now on.
    let rotated = console
        .post(&format!("/console/partners/{id}/keys"), &[("csrf", &csrf)])
        .await;
    rotated.assert_page(201, "The new key is shown only now");
    let new_key = secret_in(&rotated);
    assert!(new_key.starts_with("vk_partner_") && new_key != key);
    assert_eq!(app.count(&key_rows(sha256(&new_key), false)).await, 1);
    assert_eq!(app.count(&key_rows(sha256(&key), true)).await, 1);

    // Revoking needs its confirmation page.
    let revoke = format!("/console/partners/{id}/revoke");
    let confirm = console.get(&revoke).await;
    confirm.assert_page(200, "Revoking is for good");
    console
        .post(&revoke, &[("csrf", &csrf)])
        .await
        .assert_page(400, "Revoking needs its confirmation");
    console
        .post(&revoke, &[("confirm", "revoke")])
        .await
        .assert_page(403, "This form has expired");
    let shown = app.get(&format!("/v1/partners/{id}"), ADMIN).await;
    assert_eq!(shown.assert_status(200)["status"], "active");
    console
        .post(&revoke, &[("csrf", &confirm.csrf()), ("confirm", "revoke")])
        .await
        .assert_page(200, "Partner revoked");
    let shown = app.get(&format!("/v1/partners/{id}"), ADMIN).await;
    assert_eq!(shown.assert_status(200)["status"], "revoked");
    assert_eq!(app.count(&key_rows(sha256(&new_key), true)).await, 1);
    let list = console.get("/console/partners").await;
    assert!(list.body.contains("revoked <time") && !list.body.contains("/keys\""));
    // A revoked partner's key cannot be rotated; the API's refusal is a sentence.
    console
        .post(&format!("/console/partners/{id}/keys"), &[("csrf", &csrf)])
        .await
        .assert_page(409, "Not possible now");
    console
        .get("/console/partners/pt_0192f2a4c3b87d9e8f1a2b3c4d5e6f70/revoke")
        .await
        .assert_page(404, "No such partner");

    // A page at a time, newest first.
    let mut newest = Vec::new();
    for n in 0..25 {
        let made = app
            .post(
                "/v1/partners",
                ADMIN,
                json!({ "name": format!("Partner {n}"), "contact": "ops@example.com" }),
            )
            .await;
        newest.insert(
            0,
            made.assert_status(201)["partner_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let first = console.get("/console/partners").await;
    assert_eq!(partner_rows(&first), newest);
    // Only the next-page link carries a cursor (the first page's link has none).
    let link = "href=\"/console/partners?cursor=";
    let start = first.body.find(link).expect("a next page link") + "href=\"".len();
    let next = &first.body[start..];
    let next = next[..next.find('"').unwrap()].to_owned();
    let second = console.get(&next).await;
    second.assert_page(200, "First page");
    assert_eq!(partner_rows(&second), [id.as_str()]);

    // An org admin sees no partners and no controls, and its forged writes are refused.
    let org = app.org("console-partners").await;
    let admin = app.token(&org, "admin").await;
    let mut console = Console::new(app);
    console.sign_in(&admin).await;
    let page = console.get("/console/partners").await;
    page.assert_page(200, "Partners are managed by the platform admin");
    for hidden in [
        "Add partner",
        "Rotate key",
        "Revoke…",
        "Acme Pay",
        id.as_str(),
    ] {
        assert!(
            !page.body.contains(hidden),
            "{hidden} shown to an org admin"
        );
    }
    let csrf = page.csrf();
    let partners = app.count("SELECT COUNT(*) FROM partners").await;
    console
        .post(
            "/console/partners",
            &[
                ("csrf", &csrf),
                ("name", "Forged"),
                ("contact", "x@example.com"),
            ],
        )
        .await
        .assert_page(403, "This needs the platform admin token");
    let live = &newest[0];
    console
        .post(
            &format!("/console/partners/{live}/keys"),
            &[("csrf", &csrf)],
        )
        .await
        .assert_page(403, "This needs the platform admin token");
    console
        .get(&format!("/console/partners/{live}/revoke"))
        .await
        .assert_page(403, "This needs the platform admin token");
    console
        .post(
            &format!("/console/partners/{live}/revoke"),
            &[("csrf", &csrf), ("confirm", "revoke")],
        )
        .await
        .assert_page(403, "This needs the platform admin token");
    assert_eq!(app.count("SELECT COUNT(*) FROM partners").await, partners);
    let shown = app.get(&format!("/v1/partners/{live}"), ADMIN).await;
    assert_eq!(shown.assert_status(200)["status"], "active");
}
