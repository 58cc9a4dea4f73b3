//! The proxy's management operations: settings (get, put, patch), the call log (list,
//! get) and the caller's status.

use super::*;
use aos_types::AgentId;
#[allow(clippy::wildcard_imports)]
use aos_types::ApiKeyId;

/// The tenant an actor may manage (`admin`), or read (`admin` or `proxy:invoke`).
pub(super) fn managed_tenant(actor: &AuthContext, named: Option<Uuid>, write: bool) -> SpineResult<Uuid> {
    let wanted: &[Scope] = if write {
        &[Scope::Admin]
    } else {
        &[Scope::Admin, Scope::ProxyInvoke]
    };
    actor.tenant_named(named, wanted)
}

pub(super) fn settings_to_api(settings: &TenantSettings) -> SpineResult<api::ProxySettings> {
    serde_json::to_value(settings)
        .and_then(serde_json::from_value)
        .map_err(|e| {
            tracing::error!(error = %e, "proxy settings do not map onto the API schema");
            SpineError::internal()
        })
}

/// `proxy.settings.get`.
pub struct GetSettings {
    pub actor: AuthContext,
    pub tenant_id: Option<Uuid>,
}

impl Operation for GetSettings {
    const NAME: &'static str = "proxy.settings.get";
    const MODE: Mode = Mode::Read;
    type Output = api::ProxySettings;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = managed_tenant(&self.actor, self.tenant_id, false)?;
            aos_engines::tenants::get(cx.conn, tenant).await?;
            settings_to_api(&proxy_settings::load(cx.conn, tenant).await?)
        })
    }
}

/// `proxy.settings.put`: replaces the tenant's settings (absent fields take defaults).
pub struct PutSettings {
    pub actor: AuthContext,
    pub tenant_id: Option<Uuid>,
    /// The document as sent (validated here so errors name the field).
    pub settings: Value,
}

impl Operation for PutSettings {
    const NAME: &'static str = "proxy.settings.put";
    const MODE: Mode = Mode::Write;
    type Output = api::ProxySettings;

    fn run(self, mut cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = managed_tenant(&self.actor, self.tenant_id, true)?;
            store_settings(&mut cx, tenant, self.settings, &self.actor).await
        })
    }
}

/// `proxy.settings.patch`: merges a JSON merge patch (RFC 7396) into the tenant's
/// settings: what the patch leaves out keeps its value, `null` resets a field to its
/// default. The merged document is validated as a whole, as a PUT is.
pub struct PatchSettings {
    pub actor: AuthContext,
    pub tenant_id: Option<Uuid>,
    pub patch: Value,
}

impl Operation for PatchSettings {
    const NAME: &'static str = "proxy.settings.patch";
    const MODE: Mode = Mode::Write;
    type Output = api::ProxySettings;

    fn run(self, mut cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = managed_tenant(&self.actor, self.tenant_id, true)?;
            let current = proxy_settings::load(cx.conn, tenant).await?;
            let mut document = serde_json::to_value(&current).map_err(|_| SpineError::internal())?;
            merge_patch(&mut document, self.patch);
            store_settings(&mut cx, tenant, document, &self.actor).await
        })
    }
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
pub(super) fn merge_patch(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(object) = target.as_object_mut() {
                for (key, value) in fields {
                    if value.is_null() {
                        object.remove(&key);
                    } else {
                        merge_patch(object.entry(key).or_insert(Value::Null), value);
                    }
                }
            }
        }
        other => *target = other,
    }
}

/// Validates a whole settings document (errors name the field), stores it, and has this
/// replica's settings cache hold it once the transaction commits.
pub(super) async fn store_settings(
    cx: &mut OperationContext<'_>,
    tenant: Uuid,
    document: Value,
    actor: &AuthContext,
) -> SpineResult<api::ProxySettings> {
    let settings: TenantSettings = serde_path_to_error::deserialize(document).map_err(|e| {
        let path = e.path().to_string();
        SpineError::new(ErrorCode::ValidationFailed, format!("{path}: {}", e.inner())).on_field(path.clone())
    })?;
    let api = settings_to_api(&settings)?;
    proxy_settings::save(cx.conn, tenant, &settings, &actor.actor()).await?;
    cx.after_commit(Effect::ProxySettings(tenant, Arc::new(settings)));
    Ok(api)
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    #[test]
    fn a_merge_patch_keeps_what_it_leaves_out_and_null_removes() {
        let mut doc = json!({"guardrails": {"pii": "flag", "max_tokens": 5}, "budget": {"daily_limit_micros": 1}});
        merge_patch(&mut doc, json!({"guardrails": {"pii": "block", "max_tokens": null}}));
        assert_eq!(
            doc,
            json!({"guardrails": {"pii": "block"}, "budget": {"daily_limit_micros": 1}})
        );
        merge_patch(&mut doc, json!({"budget": 3}));
        assert_eq!(doc["budget"], 3);
    }
}

pub(super) fn call_to_api(row: ProxyCallRow, detail: bool) -> api::ProxyCall {
    api::ProxyCall {
        id: row.id.0,
        tenant_id: row.tenant_id.0,
        key_id: row.key_id.map(|k| k.0),
        actor: row.actor,
        endpoint: row.endpoint,
        model: row.model,
        provider: row.provider,
        stream: row.stream,
        status: row.status,
        http_status: u16::try_from(row.http_status).unwrap_or(0),
        error_code: row.error_code,
        latency_ms: row.latency_ms,
        input_tokens: row.input_tokens,
        cached_input_tokens: row.cached_input_tokens,
        output_tokens: row.output_tokens,
        token_source: row.token_source,
        cost_micros: row.cost_micros,
        killswitch: row.killswitch,
        guardrails: serde_json::from_value(row.guardrails.0).unwrap_or_default(),
        request_hash: row.request_hash,
        replay_eligible: row.replay_eligible,
        replayed_from_id: row.replayed_from_id.map(|k| k.0),
        created_at: row.created_at.into(),
        request: if detail { row.request_body.map(|b| b.0) } else { None },
        response: if detail { row.response_body.map(|b| b.0) } else { None },
    }
}

/// Whose calls an actor sees: an admin (or the operator) the tenant's, a `proxy:invoke`
/// key only its own.
pub(super) fn call_scope(actor: &AuthContext, named: Option<Uuid>) -> SpineResult<(Uuid, Option<Uuid>)> {
    if let Ok(tenant) = managed_tenant(actor, named, true) {
        return Ok((tenant, None));
    }
    let tenant = managed_tenant(actor, named, false)?;
    match actor {
        AuthContext::Machine { key_id, .. } => Ok((tenant, Some(*key_id))),
        _ => Err(SpineError::new(
            ErrorCode::InsufficientScope,
            "reading the call log needs the admin scope",
        )),
    }
}

pub(super) fn parse_time(field: &str, text: &Option<String>) -> SpineResult<Option<DbTime>> {
    text.as_deref()
        .map(|t| {
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map(DbTime::from)
                .map_err(|_| {
                    SpineError::new(ErrorCode::ValidationFailed, format!("{field}: an RFC 3339 time"))
                        .on_field(field.to_owned())
                })
        })
        .transpose()
}

/// `proxy.calls.list`.
pub struct ListCalls {
    pub actor: AuthContext,
    pub query: api::ProxyCallQuery,
}

impl Operation for ListCalls {
    const NAME: &'static str = "proxy.calls.list";
    const MODE: Mode = Mode::Read;
    type Output = (Vec<api::ProxyCall>, u32, Option<String>);

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let q = self.query;
            let (tenant, own_key) = call_scope(&self.actor, q.tenant_id)?;
            let limit = cursor::limit(q.limit, 50, 200)?;
            if let Some(status) = &q.status
                && CallStatus::parse(status).is_none()
            {
                return Err(
                    SpineError::new(ErrorCode::ValidationFailed, format!("status: unknown status {status}"))
                        .on_field("status"),
                );
            }
            let key_id = match (own_key, q.key_id) {
                (Some(own), Some(asked)) if own != asked => {
                    return Err(SpineError::new(
                        ErrorCode::Forbidden,
                        "a proxy:invoke key reads only its own calls",
                    ));
                }
                (Some(own), _) => Some(own),
                (None, asked) => asked,
            };
            let filter = CallFilter {
                key_id: key_id.map(ApiKeyId::from),
                model: q.model,
                status: q.status,
                since: parse_time("since", &q.since)?,
                until: parse_time("until", &q.until)?,
            };
            let after = q.cursor.as_deref().map(cursor::decode).transpose()?;
            let rows = aos_engines::proxy::list_calls(cx.conn, tenant, &filter, after, i64::from(limit) + 1).await?;
            let (rows, next) = aos_engines::paging::split(rows, limit, |r| cursor::encode(r.created_at, r.id));
            Ok((rows.into_iter().map(|r| call_to_api(r, false)).collect(), limit, next))
        })
    }
}

/// `proxy.calls.get`.
pub struct GetCall {
    pub actor: AuthContext,
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
}

impl Operation for GetCall {
    const NAME: &'static str = "proxy.calls.get";
    const MODE: Mode = Mode::Read;
    type Output = api::ProxyCall;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let (tenant, own_key) = call_scope(&self.actor, self.tenant_id)?;
            let row = aos_engines::proxy::get_call(cx.conn, tenant, self.id)
                .await?
                .filter(|row| own_key.is_none_or(|k| row.key_id.map(|r| r.0) == Some(k)))
                .ok_or_else(|| SpineError::new(ErrorCode::NotFound, "no such call"))?;
            Ok(call_to_api(row, true))
        })
    }
}

/// `proxy.status`: the protection pulse of the caller (`GET /v1/status`).
pub struct Status {
    pub actor: AuthContext,
}

impl Operation for Status {
    const NAME: &'static str = "proxy.status";
    const MODE: Mode = Mode::Read;
    type Output = api::ProxyStatus;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::ProxyInvoke)?;
            let key = match &self.actor {
                AuthContext::Machine { key_id, .. } => Some(*key_id),
                _ => None,
            };
            let runtime = &cx.shared.proxy;
            let settings = proxy_settings::load(cx.conn, tenant).await?;
            let switch = &cx.shared.kill_switch;
            let tenant_frozen = switch.is_frozen(aos_engines::killswitch::Entity::Tenant(tenant));
            let key_frozen = key.is_some_and(|k| switch.is_frozen(aos_engines::killswitch::Entity::Key(k)));
            let reason = switch
                .check(tenant, key, self.actor.agent().map(AgentId::get))
                .and_then(|f| f.reason);
            let (day, month) = budget::periods(OffsetDateTime::now_utc());
            let mut scopes = vec![aos_engines::proxy::SCOPE_TENANT.to_owned()];
            scopes.extend(key.map(aos_engines::proxy::key_scope));
            let agent = self.actor.agent().map(AgentId::get);
            scopes.extend(agent.map(aos_engines::proxy::agent_scope));
            let rows = aos_engines::proxy::counters(cx.conn, tenant, &scopes, &[day.clone(), month.clone()]).await?;
            let limit_of = |scope: &str, period: &str| {
                let budget = if scope == aos_engines::proxy::SCOPE_TENANT {
                    Some(&settings.budget)
                } else if scope.starts_with("agent:") {
                    agent.and_then(|a| settings.agent_budgets.get(&a))
                } else {
                    key.and_then(|k| settings.key_budgets.get(&k))
                };
                budget.and_then(|b| {
                    if period.starts_with("day:") {
                        b.daily_limit_micros
                    } else {
                        b.monthly_limit_micros
                    }
                })
            };
            let mut budgets = Vec::new();
            for scope in &scopes {
                for period in [&day, &month] {
                    let row = rows.iter().find(|r| &r.scope == scope && &r.period == period);
                    let (spent, reserved) = row.map_or((0, 0), |r| (r.spent_micros, r.reserved_micros));
                    let limit = limit_of(scope, period);
                    budgets.push(api::BudgetUsage {
                        scope: scope.clone(),
                        period: period.clone(),
                        limit_micros: limit,
                        spent_micros: spent,
                        reserved_micros: reserved,
                        remaining_micros: limit.map(|l| (l - spent - reserved).max(0)),
                        spent_usd: prices::dollars(spent),
                    });
                }
            }
            let rate_limit = match (key, settings.rate_limit_per_minute) {
                (Some(k), Some(limit)) => {
                    let state = runtime.engine.limiter.peek(k, limit);
                    Some(api::RateLimitPulse {
                        limit_per_minute: state.limit,
                        remaining: state.remaining,
                        reset_secs: state.reset_secs,
                    })
                }
                _ => None,
            };
            let models = runtime
                .engine
                .models()
                .into_iter()
                .map(|(m, _)| m)
                .filter(|m| {
                    settings
                        .guardrails
                        .allowed_models
                        .as_ref()
                        .is_none_or(|a| a.contains(m))
                })
                .collect();
            Ok(api::ProxyStatus {
                tenant_id: tenant,
                key_id: key,
                status: if tenant_frozen || key_frozen {
                    "frozen"
                } else {
                    "active"
                }
                .to_owned(),
                kill_switch: api::KillSwitchPulse {
                    tenant_frozen,
                    key_frozen,
                    reason,
                },
                guardrails: settings
                    .guardrails
                    .active()
                    .into_iter()
                    .map(|(name, action)| api::ActiveGuardrail {
                        name: name.to_owned(),
                        action,
                    })
                    .collect(),
                budgets,
                rate_limit,
                models,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_settings_schema_matches_the_engine_document() {
        let defaults = TenantSettings::default();
        let api = settings_to_api(&defaults).unwrap();
        let back: TenantSettings = serde_json::from_value(serde_json::to_value(&api).unwrap()).unwrap();
        assert_eq!(back, defaults);
    }
}
