//! Tool-invocation policy: the [`PolicyChecker`] boundary and its two implementations,
//! embedded Rego ([`EmbeddedRego`], evaluated in-process by regorus) and a remote OPA
//! server over its REST data API ([`RemoteOpa`]).
//!
//! A policy package defines up to four rules, each a set of reason strings: `deny`,
//! `require_approval`, `flag`, and `hide` (the tool is left out of the caller's catalog at
//! `/mcp`; evaluated with `input.purpose == "list"` and empty arguments). The shipped default is package `aos.invoke`
//! ([`DEFAULT_POLICY`]); an operator's platform module is package `aos.platform`; a
//! tenant's own module is package `aos.tenant`. All active packages are evaluated and the
//! most restrictive answer wins (deny, then require-approval, then allow), so neither a
//! tenant module nor anything else can loosen the platform's or the default's rules.
//! Evaluation errors fail closed.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The shipped default policy (package `aos.invoke`).
pub const DEFAULT_POLICY: &str = include_str!("default.rego");
pub const DEFAULT_PACKAGE: &str = "aos.invoke";
pub const PLATFORM_PACKAGE: &str = "aos.platform";
pub const TENANT_PACKAGE: &str = "aos.tenant";
/// Largest module accepted from a tenant or operator.
pub const MAX_MODULE_BYTES: usize = 64 * 1024;

/// `[policy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// `embedded` (regorus, in-process) or `opa` (a remote OPA server).
    pub engine: String,
    /// Replaces the shipped default module (must be package `aos.invoke`).
    pub default_policy_file: Option<std::path::PathBuf>,
    /// Stop an embedded evaluation after this many milliseconds (fails closed).
    pub eval_timeout_ms: u64,
    pub opa: OpaSettings,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            engine: "embedded".into(),
            default_policy_file: None,
            eval_timeout_ms: 50,
            opa: OpaSettings::default(),
        }
    }
}

/// `[policy.opa]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpaSettings {
    /// e.g. `http://127.0.0.1:8181`.
    pub url: Option<String>,
    /// The data path of the decision document, e.g. `aos/invoke`.
    pub path: String,
    pub timeout_ms: u64,
}

impl Default for OpaSettings {
    fn default() -> Self {
        Self {
            url: None,
            path: "aos/invoke".into(),
            timeout_ms: 2_000,
        }
    }
}

/// What the policy said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Deny,
    RequireApproval,
}

impl Outcome {
    fn rank(self) -> u8 {
        match self {
            Self::Allow => 0,
            Self::RequireApproval => 1,
            Self::Deny => 2,
        }
    }
}

/// One evaluation's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// Why (deny reasons for a deny, approval reasons for require-approval).
    pub reasons: Vec<String>,
    /// `flag` reasons (an allow with flags is recorded as "flagged").
    pub flags: Vec<String>,
    /// `hide` reasons: the tool is left out of the caller's MCP catalog (`/mcp`).
    pub hidden: Vec<String>,
    /// Unique per evaluation (OPA's own decision id when it returns one).
    pub decision_id: String,
    /// Which packages decided, e.g. `aos.invoke+aos.tenant`.
    pub policy_id: String,
    /// The revisions of the modules evaluated, e.g. `aos.invoke@sha256:..`.
    pub revision: String,
    /// Set when evaluation failed (the decision is then a deny: fail closed).
    pub error: Option<String>,
}

impl Decision {
    /// `allowed`, `blocked`, `flagged` or `pending_approval`.
    pub fn label(&self) -> &'static str {
        match self.outcome {
            Outcome::Deny => "blocked",
            Outcome::RequireApproval => "pending_approval",
            Outcome::Allow if !self.flags.is_empty() => "flagged",
            Outcome::Allow => "allowed",
        }
    }

    /// A fail-closed deny for an evaluation error.
    pub fn failed(policy_id: String, revision: String, error: String) -> Self {
        Self {
            outcome: Outcome::Deny,
            reasons: vec!["policy evaluation failed; denied (fail closed)".into()],
            flags: Vec::new(),
            hidden: vec!["policy evaluation failed (fail closed)".into()],
            decision_id: uuid::Uuid::now_v7().to_string(),
            policy_id,
            revision,
            error: Some(error),
        }
    }
}

/// A stored module to evaluate beside the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub package: &'static str,
    pub source: String,
    pub revision: String,
}

/// What a checker is asked.
#[derive(Debug, Clone)]
pub struct PolicyRequest {
    pub input: Value,
    /// The platform's and the tenant's active modules (embedded engine only).
    pub modules: Vec<Module>,
}

pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;

/// Decides whether a tool call may go out. Never errors: failures are fail-closed denies
/// carrying [`Decision::error`].
pub trait PolicyChecker: Send + Sync + std::fmt::Debug {
    fn check<'a>(&'a self, request: &'a PolicyRequest) -> CheckFuture<'a>;
    /// `embedded` or `opa`.
    fn kind(&self) -> &'static str;
}

/// `sha256:` and the first 16 hex digits of the source.
pub fn revision_of(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The three rule sets of one package's value (absent rules are empty).
fn rule_sets(package: &str, value: &Value) -> Result<[Vec<String>; 4], String> {
    let object = match value {
        Value::Object(o) => o,
        Value::Null => return Ok([Vec::new(), Vec::new(), Vec::new(), Vec::new()]),
        _ => return Err(format!("package {package} did not evaluate to an object")),
    };
    let read = |rule: &str| -> Result<Vec<String>, String> {
        match object.get(rule) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("{package}.{rule} must be a set of strings"))
                })
                .collect(),
            Some(Value::Bool(true)) => Ok(vec![format!("{package}.{rule}")]),
            Some(Value::Bool(false)) => Ok(Vec::new()),
            Some(_) => Err(format!("{package}.{rule} must be a set of strings")),
        }
    };
    Ok([read("deny")?, read("require_approval")?, read("flag")?, read("hide")?])
}

/// Folds per-package rule sets into one decision, most restrictive first.
fn combine(results: Vec<[Vec<String>; 4]>, decision_id: String, policy_id: String, revision: String) -> Decision {
    let (mut deny, mut approve, mut flags, mut hidden) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for [d, a, f, h] in results {
        deny.extend(d);
        approve.extend(a);
        flags.extend(f);
        hidden.extend(h);
    }
    let (outcome, reasons) = if !deny.is_empty() {
        (Outcome::Deny, deny)
    } else if !approve.is_empty() {
        (Outcome::RequireApproval, approve)
    } else {
        (Outcome::Allow, BTreeSet::new())
    };
    debug_assert!(outcome.rank() <= 2);
    Decision {
        outcome,
        reasons: reasons.into_iter().collect(),
        flags: flags.into_iter().collect(),
        hidden: hidden.into_iter().collect(),
        decision_id,
        policy_id,
        revision,
        error: None,
    }
}

/// Compiles a module alone: it must parse and declare `package`.
fn compile(package: &str, source: &str) -> Result<regorus::Engine, String> {
    if source.len() > MAX_MODULE_BYTES {
        return Err(format!("the module is larger than {} KiB", MAX_MODULE_BYTES / 1024));
    }
    let mut engine = regorus::Engine::new();
    let declared = engine
        .add_policy(format!("{package}.rego"), source.to_owned())
        .map_err(|e| e.to_string())?;
    if declared != format!("data.{package}") {
        return Err(format!(
            "the module declares {}, it must declare package {package}",
            declared.trim_start_matches("data.")
        ));
    }
    Ok(engine)
}

fn eval_package(engine: &mut regorus::Engine, package: &str, input: &Value) -> Result<[Vec<String>; 4], String> {
    engine.set_input(regorus::Value::from(input.clone()));
    let results = engine
        .eval_query(format!("data.{package}"), false)
        .map_err(|e| e.to_string())?;
    let value = results
        .result
        .first()
        .and_then(|r| r.expressions.first())
        .map(|e| serde_json::to_value(&e.value).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    rule_sets(package, &value)
}

/// A sample input that exercises every field a module may read.
pub fn sample_input() -> Value {
    json!({
        "tenant": {"id": "00000000-0000-0000-0000-000000000000", "settings": {"high_requires_approval": true}},
        "actor": {"id": "key:sample", "type": "machine"},
        "server": {"id": "s", "name": "sample", "url": "http://127.0.0.1/mcp", "status": "ACTIVE"},
        "tool": {"id": "t", "name": "sample", "risk": "LOW", "enabled": true, "requires_approval": false,
                 "quarantined": false, "flags": [], "annotations": {}},
        "arguments": {},
        "run": {"run_id": null, "step_index": null, "trace_id": null}
    })
}

/// Checks a module before it is stored: it compiles, declares `package`, and evaluates
/// against a sample input to the rule shapes above. Returns its revision.
pub fn validate_module(package: &str, source: &str) -> Result<String, String> {
    let mut engine = compile(package, source)?;
    eval_package(&mut engine, package, &sample_input())?;
    Ok(revision_of(source))
}

/// Regorus in-process, with compiled modules cached by revision.
#[derive(Debug)]
pub struct EmbeddedRego {
    default: regorus::Engine,
    default_revision: String,
    timeout: Duration,
    cache: Mutex<HashMap<String, regorus::Engine>>,
}

const CACHE_LIMIT: usize = 512;

impl EmbeddedRego {
    /// Compiles the default module; an invalid one is refused (start-up fails).
    pub fn new(default_source: &str, timeout: Duration) -> Result<Self, String> {
        let mut default = compile(DEFAULT_PACKAGE, default_source).map_err(|e| format!("default policy: {e}"))?;
        eval_package(&mut default, DEFAULT_PACKAGE, &sample_input()).map_err(|e| format!("default policy: {e}"))?;
        Ok(Self {
            default,
            default_revision: revision_of(default_source),
            timeout,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn engine_for(&self, module: &Module) -> Result<regorus::Engine, String> {
        let key = format!("{}@{}", module.package, module.revision);
        if let Some(engine) = self.cache.lock().ok().and_then(|cache| cache.get(&key).cloned()) {
            return Ok(engine);
        }
        let engine = compile(module.package, &module.source)?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key, engine.clone());
        }
        Ok(engine)
    }

    fn limit(&self, engine: &mut regorus::Engine) {
        if let Some(check_interval) = std::num::NonZeroU32::new(64) {
            engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
                limit: self.timeout,
                check_interval,
            });
        }
    }

    fn evaluate(&self, request: &PolicyRequest) -> Decision {
        let mut ids = vec![DEFAULT_PACKAGE.to_owned()];
        let mut revisions = vec![format!("{DEFAULT_PACKAGE}@{}", self.default_revision)];
        for module in &request.modules {
            ids.push(module.package.to_owned());
            revisions.push(format!("{}@{}", module.package, module.revision));
        }
        let (policy_id, revision) = (ids.join("+"), revisions.join(","));
        let mut results = Vec::with_capacity(1 + request.modules.len());
        let mut default = self.default.clone();
        self.limit(&mut default);
        match eval_package(&mut default, DEFAULT_PACKAGE, &request.input) {
            Ok(r) => results.push(r),
            Err(e) => return Decision::failed(policy_id, revision, format!("{DEFAULT_PACKAGE}: {e}")),
        }
        for module in &request.modules {
            let evaluated = self.engine_for(module).and_then(|mut engine| {
                self.limit(&mut engine);
                eval_package(&mut engine, module.package, &request.input)
            });
            match evaluated {
                Ok(r) => results.push(r),
                Err(e) => return Decision::failed(policy_id, revision, format!("{}: {e}", module.package)),
            }
        }
        combine(results, uuid::Uuid::now_v7().to_string(), policy_id, revision)
    }
}

impl PolicyChecker for EmbeddedRego {
    fn check<'a>(&'a self, request: &'a PolicyRequest) -> CheckFuture<'a> {
        Box::pin(async move { self.evaluate(request) })
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }
}

/// A remote OPA server: `POST {url}/v1/data/{path}` with `{"input": ...}`; the result
/// document carries the same `deny` / `require_approval` / `flag` rules.
#[derive(Debug)]
pub struct RemoteOpa {
    client: reqwest::Client,
    endpoint: String,
    path: String,
}

impl RemoteOpa {
    pub fn new(settings: &OpaSettings) -> Result<Self, String> {
        let url = settings
            .url
            .as_deref()
            .ok_or_else(|| "policy.opa.url: must be set when policy.engine = \"opa\"".to_owned())?;
        let parsed = url::Url::parse(url).map_err(|e| format!("policy.opa.url: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("policy.opa.url: must be http:// or https://".into());
        }
        let path = settings.path.trim_matches('/');
        if path.is_empty()
            || !path
                .split('/')
                .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err("policy.opa.path: must be a data path like aos/invoke".into());
        }
        crate::outbound::ensure_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("policy.opa: {e}"))?;
        Ok(Self {
            client,
            endpoint: format!("{}/v1/data/{path}", url.trim_end_matches('/')),
            path: path.replace('/', "."),
        })
    }

    async fn evaluate(&self, request: &PolicyRequest) -> Decision {
        let policy_id = format!("opa:{}", self.path);
        let revision = "opa".to_owned();
        let response = match self
            .client
            .post(&self.endpoint)
            .json(&json!({"input": request.input}))
            .send()
            .await
        {
            Ok(r) => r,
            // Without the URL: the error reaches tenants' audit events and incidents, and the
            // OPA address (perhaps with credentials in it) is the operator's.
            Err(e) => return Decision::failed(policy_id, revision, format!("OPA unreachable: {}", e.without_url())),
        };
        let status = response.status();
        if !status.is_success() {
            return Decision::failed(policy_id, revision, format!("OPA answered {status}"));
        }
        let body: Value = match response.json().await {
            Ok(b) => b,
            Err(e) => {
                return Decision::failed(
                    policy_id,
                    revision,
                    format!("OPA answer is not JSON: {}", e.without_url()),
                );
            }
        };
        let Some(result) = body.get("result") else {
            return Decision::failed(
                policy_id,
                revision,
                format!("{} is undefined on the OPA server", self.path),
            );
        };
        let revision = body
            .pointer("/provenance/revision")
            .and_then(Value::as_str)
            .map_or(revision, |r| format!("opa@{r}"));
        let decision_id = body
            .get("decision_id")
            .and_then(Value::as_str)
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        match rule_sets(&self.path, result) {
            Ok(sets) => combine(vec![sets], decision_id, policy_id, revision),
            Err(e) => Decision::failed(policy_id, revision, e),
        }
    }
}

impl PolicyChecker for RemoteOpa {
    fn check<'a>(&'a self, request: &'a PolicyRequest) -> CheckFuture<'a> {
        Box::pin(self.evaluate(request))
    }

    fn kind(&self) -> &'static str {
        "opa"
    }
}

/// Builds the configured checker; any policy that fails to load is an error here, so the
/// server refuses to start.
pub fn checker(settings: &PolicySettings) -> Result<Arc<dyn PolicyChecker>, String> {
    match settings.engine.as_str() {
        "embedded" => {
            let source = match &settings.default_policy_file {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| format!("policy.default_policy_file: cannot read {}: {e}", path.display()))?,
                None => DEFAULT_POLICY.to_owned(),
            };
            Ok(Arc::new(EmbeddedRego::new(
                &source,
                Duration::from_millis(settings.eval_timeout_ms.max(1)),
            )?))
        }
        "opa" => Ok(Arc::new(RemoteOpa::new(&settings.opa)?)),
        other => Err(format!("policy.engine: {other:?} is not one of embedded, opa")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(risk: &str, enabled: bool, quarantined: bool, requires_approval: bool, high: bool) -> Value {
        let mut input = sample_input();
        input["tool"]["risk"] = json!(risk);
        input["tool"]["enabled"] = json!(enabled);
        input["tool"]["quarantined"] = json!(quarantined);
        input["tool"]["requires_approval"] = json!(requires_approval);
        input["tenant"]["settings"]["high_requires_approval"] = json!(high);
        input
    }

    fn check(engine: &EmbeddedRego, input: Value, modules: Vec<Module>) -> Decision {
        engine.evaluate(&PolicyRequest { input, modules })
    }

    #[test]
    fn the_default_policy_decides_as_documented() {
        let engine = EmbeddedRego::new(DEFAULT_POLICY, Duration::from_millis(100)).unwrap();
        assert_eq!(
            check(&engine, input("LOW", true, false, false, true), vec![]).outcome,
            Outcome::Allow
        );
        assert_eq!(
            check(&engine, input("MEDIUM", true, false, false, true), vec![]).outcome,
            Outcome::Allow
        );
        let disabled = check(&engine, input("LOW", false, false, false, true), vec![]);
        assert_eq!(disabled.outcome, Outcome::Deny);
        assert_eq!(disabled.reasons, vec!["tool is disabled".to_owned()]);
        assert_eq!(
            check(&engine, input("LOW", true, true, false, true), vec![]).outcome,
            Outcome::Deny
        );
        assert_eq!(
            check(&engine, input("CRITICAL", true, false, false, false), vec![]).outcome,
            Outcome::RequireApproval
        );
        assert_eq!(
            check(&engine, input("LOW", true, false, true, false), vec![]).outcome,
            Outcome::RequireApproval
        );
        assert_eq!(
            check(&engine, input("HIGH", true, false, false, true), vec![]).outcome,
            Outcome::RequireApproval
        );
        assert_eq!(
            check(&engine, input("HIGH", true, false, false, false), vec![]).outcome,
            Outcome::Allow
        );
        // A disabled CRITICAL tool is denied, not sent for approval.
        assert_eq!(
            check(&engine, input("CRITICAL", false, false, false, true), vec![]).outcome,
            Outcome::Deny
        );
        let mut flagged = input("LOW", true, false, false, true);
        flagged["tool"]["flags"] = json!(["hidden instructions"]);
        let decision = check(&engine, flagged, vec![]);
        assert_eq!((decision.outcome, decision.label()), (Outcome::Allow, "flagged"));
        assert!(decision.revision.starts_with("aos.invoke@sha256:"));
    }

    #[test]
    fn tenant_modules_only_tighten_and_errors_fail_closed() {
        let engine = EmbeddedRego::new(DEFAULT_POLICY, Duration::from_millis(100)).unwrap();
        let source =
            "package aos.tenant\nimport rego.v1\ndeny contains \"no deletes\" if input.arguments.op == \"delete\"\n";
        let revision = validate_module(TENANT_PACKAGE, source).unwrap();
        let module = Module {
            package: TENANT_PACKAGE,
            source: source.into(),
            revision: revision.clone(),
        };
        let mut call = input("LOW", true, false, false, true);
        assert_eq!(
            check(&engine, call.clone(), vec![module.clone()]).outcome,
            Outcome::Allow
        );
        call["arguments"] = json!({"op": "delete"});
        let denied = check(&engine, call.clone(), vec![module.clone()]);
        assert_eq!(
            (denied.outcome, denied.reasons.clone()),
            (Outcome::Deny, vec!["no deletes".to_owned()])
        );
        assert_eq!(denied.policy_id, "aos.invoke+aos.tenant");
        assert!(denied.revision.contains(&format!("aos.tenant@{revision}")));
        // A tenant "allow everything" cannot lift the default's approval requirement.
        let lax = Module {
            package: TENANT_PACKAGE,
            source: "package aos.tenant\nimport rego.v1\nallow := true\n".into(),
            revision: "x".into(),
        };
        assert_eq!(
            check(&engine, input("CRITICAL", true, false, false, true), vec![lax]).outcome,
            Outcome::RequireApproval
        );
        // A runtime error (a rule with conflicting values) is a deny carrying the error.
        let broken = Module {
            package: TENANT_PACKAGE,
            source: "package aos.tenant\nimport rego.v1\ndeny := \"not a set\"\n".into(),
            revision: "y".into(),
        };
        let failed = check(&engine, input("LOW", true, false, false, true), vec![broken]);
        assert_eq!(failed.outcome, Outcome::Deny);
        assert!(failed.error.is_some());
    }

    #[test]
    fn invalid_modules_are_refused_before_they_are_stored() {
        assert!(validate_module(TENANT_PACKAGE, "package aos.tenant\ndeny contains").is_err());
        let wrong_package = validate_module(TENANT_PACKAGE, "package aos.invoke\nimport rego.v1\n").unwrap_err();
        assert!(
            wrong_package.contains("must declare package aos.tenant"),
            "{wrong_package}"
        );
        assert!(validate_module(TENANT_PACKAGE, "package aos.tenant\nimport rego.v1\ndeny := 5\n").is_err());
        assert!(validate_module(TENANT_PACKAGE, &"#".repeat(MAX_MODULE_BYTES + 1)).is_err());
        assert!(EmbeddedRego::new("package aos.invoke\ndeny contains", Duration::from_millis(10)).is_err());
        assert!(
            checker(&PolicySettings {
                engine: "magic".into(),
                ..PolicySettings::default()
            })
            .is_err()
        );
        assert!(
            checker(&PolicySettings {
                engine: "opa".into(),
                ..PolicySettings::default()
            })
            .is_err()
        );
    }
}
