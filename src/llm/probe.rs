//! `pace doctor`'s LLM checks: the credentials (or the replay cassette), and what a model server
//! that is not the vendor's own says about itself.
//!
//! llama.cpp's `llama-server` serves both wire formats pace speaks, and silently drops the
//! tools of a request when its chat template cannot show them: FORGE then gets text
//! answers and holds with "stopped using its tools", which reads like a model problem.
//! `GET /props` says which template is loaded and what it can do
//! (`chat_template_caps.supports_tools`; older builds only return the template text). A
//! server without `/props` is not llama.cpp and is not judged.

use std::time::Duration;

use serde_json::Value;

use crate::check::Check;
use crate::config::settings::{LlmSettings, Provider};
use crate::env::Env;

/// `pace doctor`'s LLM checks: the provider can be called (its key is set — not needed for
/// an OpenAI-compatible server at `llm.base_url` — or the replay cassette exists under
/// `repo_root`), and a self-hosted server behind `llm.base_url` (llama.cpp) would not drop
/// the tools.
pub async fn doctor(llm: &LlmSettings, repo_root: &std::path::Path, env: &Env) -> Vec<Check> {
    let mut checks = vec![credentials(llm, repo_root, env)];
    if let Some(base_url) = llm.base_url.as_deref().filter(|_| llm.provider != Provider::Replay) {
        checks.extend(llama_cpp_tools(base_url, env.get(&llm.api_key_env)).await);
    }
    checks
}

fn credentials(llm: &LlmSettings, repo_root: &std::path::Path, env: &Env) -> Check {
    if llm.provider == Provider::Replay {
        let cassette = llm.cassette.as_ref();
        let ok = cassette.is_some_and(|c| repo_root.join(c).is_file());
        let shown = cassette.map(|c| c.display().to_string()).unwrap_or_default();
        return Check::new("llm", ok, format!("replay from `{shown}`"))
            .with_hint("set `llm.cassette` to a `transcript.jsonl` recorded by pace");
    }
    let present = env.get(&llm.api_key_env).is_some();
    let optional = llm.provider == Provider::OpenAi && llm.base_url.is_some();
    let detail = if present {
        format!("`{}` is set", llm.api_key_env)
    } else {
        format!("`{}` is not set", llm.api_key_env)
    };
    Check::new("llm", present || optional, detail)
        .with_hint(format!("add `{}` as a masked CI/CD variable", llm.api_key_env))
}

/// A server that takes longer than this to describe itself is not waited for.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's root from `llm.base_url` (OpenAI-compatible bases end in `/v1`).
fn server_root(base_url: &str) -> &str {
    let base = base_url.trim_end_matches('/');
    base.strip_suffix("/v1").unwrap_or(base)
}

/// Whether llama.cpp's `/props` answer says its chat template can show tools (`None`: the
/// answer does not say).
fn template_supports_tools(props: &Value) -> Option<bool> {
    if let Some(caps) = props
        .pointer("/chat_template_caps/supports_tools")
        .and_then(Value::as_bool)
    {
        return Some(caps);
    }
    props
        .get("chat_template")
        .and_then(Value::as_str)
        .map(|template| template.contains("tools"))
}

/// The `llm-tools` check for a llama.cpp server at `base_url`, `None` when the server is
/// not llama.cpp (or does not answer in time: the `llm` check covers reachability).
pub async fn llama_cpp_tools(base_url: &str, key: Option<&str>) -> Option<Check> {
    let http = crate::net::client::build(&crate::net::client::Options {
        total_timeout: Some(PROBE_TIMEOUT),
        ..Default::default()
    })
    .ok()?;
    let url = format!("{}/props", server_root(base_url));
    let mut request = http.get(&url);
    if let Some(key) = key {
        request = request.bearer_auth(key).header("x-api-key", key);
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let props: Value = response.json().await.ok()?;
    // llama.cpp's answer always names the loaded template; another server's `/props` does not.
    props.get("chat_template")?;
    Some(judge(&url, &props))
}

fn judge(url: &str, props: &Value) -> Check {
    match template_supports_tools(props) {
        Some(false) => Check::fail(
            "llm-tools",
            format!("llama.cpp at `{url}`: its chat template cannot show tools, so FORGE's and SCRIBE's tools would be dropped silently"),
        )
        .with_hint(
            "start llama-server with `--jinja` and a model whose template has tools, or give it one with `--chat-template-file` (e.g. a Qwen2.5- or Hermes-style template with <tool_call>)",
        ),
        _ => Check::ok("llm-tools", format!("llama.cpp at `{url}`: its chat template can show tools")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_root_drops_the_openai_version_segment() {
        assert_eq!(server_root("http://127.0.0.1:8080/v1"), "http://127.0.0.1:8080");
        assert_eq!(server_root("http://127.0.0.1:8080/v1/"), "http://127.0.0.1:8080");
        assert_eq!(server_root("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn caps_decide_and_old_builds_fall_back_to_the_template_text() {
        let no_tools = json!({"chat_template": "{{ messages }}", "chat_template_caps": {"supports_tools": false}});
        assert!(!judge("u", &no_tools).ok);
        let tools = json!({"chat_template": "x", "chat_template_caps": {"supports_tools": true}});
        assert!(judge("u", &tools).ok);
        let old_without = json!({"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"});
        assert!(!judge("u", &old_without).ok);
        let old_with = json!({"chat_template": "{% if tools %}<tools>{% endif %}"});
        assert!(judge("u", &old_with).ok);
    }

    #[tokio::test]
    async fn a_server_without_props_is_not_judged() {
        let server = wiremock::MockServer::start().await;
        assert!(llama_cpp_tools(&format!("{}/v1", server.uri()), None).await.is_none());
    }

    #[tokio::test]
    async fn a_llama_cpp_template_without_tools_fails_with_the_fix() {
        use wiremock::matchers::{header, method, path};
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(method("GET"))
            .and(path("/props"))
            .and(header("authorization", "Bearer k"))
            .respond_with(
                wiremock::ResponseTemplate::new(200)
                    .set_body_json(json!({"chat_template": "t", "chat_template_caps": {"supports_tools": false}})),
            )
            .mount(&server)
            .await;
        let check = llama_cpp_tools(&format!("{}/v1", server.uri()), Some("k"))
            .await
            .unwrap();
        assert!(!check.ok);
        assert!(check.hints[0].contains("--chat-template-file"), "{check:?}");
    }
}
