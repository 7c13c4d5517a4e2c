//! Tokens as identity providers issue them (tests/js/tokens.test.mjs): an
//! edge told no audience or issuer accepts tokens with or without `aud`
//! (a string or an array) and `iss`; a second edge on the same services,
//! started with an expected audience and issuer (`CONFAB_JWT_AUDIENCE`,
//! `CONFAB_JWT_ISSUER` as `EdgeArgs`), requires them — at the handshake of
//! every contract, on REST and for a token refresh.

use confab_tests::app::spawn_app;

const AUDIENCE: &str = "confab-api";
const ISSUER: &str = "https://idp.example/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_and_issuer_at_the_handshake_on_rest_and_on_refresh() {
    let app = spawn_app().await;
    let checked = app
        .edge_with(|args| {
            args.jwt_audience = vec![AUDIENCE.into(), "confab-admin".into()];
            args.jwt_issuer = vec![ISSUER.into()];
        })
        .await;
    let env = [
        ("CONFAB_URL_CHECKED", checked),
        ("CONFAB_JWT_AUDIENCE", AUDIENCE.to_string()),
        ("CONFAB_JWT_ISSUER", ISSUER.to_string()),
    ];
    let target = confab_tests::js::Target {
        env: &env,
        ..app.js_target()
    };
    confab_tests::js::run_suite("tokens.test.mjs", target, None).await;
    app.shutdown().await;
}
