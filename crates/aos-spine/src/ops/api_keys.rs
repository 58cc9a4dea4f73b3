//! API key administration: by the platform operator for any tenant, and by a tenant's
//! admins (humans with the admin role, keys with the `admin` scope) for their own.

use aos_engines::auth::Scope;
use aos_engines::auth::keys::{self, ApiKey as Row, NewKey};
use aos_schemas::api_keys::{ApiKey, ApiKeyStatus, CreateApiKeyRequest, CreatedApiKey};
use aos_schemas::{ListEnvelope, ListMeta};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::context::AuthContext;
use crate::error::SpineError;
use crate::op::{Effect, Mode, OpFuture, Operation, OperationContext};
use crate::ops::cursor;

pub const DEFAULT_PAGE: u32 = 50;

/// Whose keys: the caller's own tenant, or (platform operator only) a named one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Own,
    Tenant(Uuid),
}

impl Target {
    fn resolve(self, actor: &AuthContext) -> Result<Uuid, SpineError> {
        match self {
            Self::Own => actor.tenant_with(Scope::Admin),
            Self::Tenant(id) => {
                actor.require_operator()?;
                Ok(id)
            }
        }
    }
}

pub(crate) fn to_api(row: Row) -> ApiKey {
    let now = time::OffsetDateTime::now_utc();
    let status = if row.revoked_at.is_some() {
        ApiKeyStatus::Revoked
    } else if row.expires_at.is_some_and(|t| t.get() <= now) {
        ApiKeyStatus::Expired
    } else {
        ApiKeyStatus::Active
    };
    ApiKey {
        id: row.id.into(),
        tenant_id: row.tenant_id.into(),
        name: row.name.clone(),
        prefix: row.prefix.clone(),
        scopes: row.scope_names(),
        status,
        created_by: row.created_by.clone(),
        created_at: row.created_at.into(),
        expires_at: row.expires_at.map(Into::into),
        revoked_at: row.revoked_at.map(Into::into),
    }
}

/// `api_keys.create`
pub struct Create {
    pub actor: AuthContext,
    pub target: Target,
    pub request: CreateApiKeyRequest,
}

impl Operation for Create {
    const NAME: &'static str = "api_keys.create";
    const MODE: Mode = Mode::Write;
    type Output = CreatedApiKey;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.target.resolve(&self.actor)?;
            let new = NewKey {
                name: self.request.name,
                scopes: self.request.scopes,
                expires_at: self.request.expires_at,
                created_by: self.actor.actor(),
                agent: None,
            };
            let (row, key) = keys::create(cx.conn, tenant, new).await?;
            tracing::info!(key_id = %row.id, tenant_id = %tenant, prefix = %row.prefix, "API key created");
            Ok(CreatedApiKey {
                api_key: to_api(row),
                key: key.expose_secret().to_owned(),
            })
        })
    }
}

/// `api_keys.list`
pub struct List {
    pub actor: AuthContext,
    pub target: Target,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl Operation for List {
    const NAME: &'static str = "api_keys.list";
    const MODE: Mode = Mode::Read;
    type Output = ListEnvelope<ApiKey>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.target.resolve(&self.actor)?;
            let limit = cursor::limit(self.limit, DEFAULT_PAGE, keys::MAX_PAGE)?;
            let after = self.cursor.as_deref().map(cursor::decode).transpose()?;
            let (rows, next, total) = keys::list(cx.conn, tenant, after, limit).await?;
            Ok(ListEnvelope {
                data: rows.into_iter().map(to_api).collect(),
                meta: ListMeta {
                    total: Some(total),
                    limit,
                    next_cursor: next.map(|(at, id)| cursor::encode(at, id)),
                },
            })
        })
    }
}

/// `api_keys.revoke`: effective on every replica within the credential poll interval.
pub struct Revoke {
    pub actor: AuthContext,
    /// `Own`: only a key of the caller's tenant; `Tenant(_)` is not used here: the
    /// platform operator revokes any key by id with [`RevokeAny`].
    pub id: Uuid,
}

impl Operation for Revoke {
    const NAME: &'static str = "api_keys.revoke";
    const MODE: Mode = Mode::Write;
    type Output = ApiKey;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::Admin)?;
            let row = keys::revoke(cx.conn, Some(tenant), self.id).await?;
            cx.after_commit(Effect::CredentialsChanged);
            tracing::info!(key_id = %row.id, tenant_id = %tenant, "API key revoked");
            Ok(to_api(row))
        })
    }
}

/// `api_keys.revoke_any` (platform operator).
pub struct RevokeAny {
    pub actor: AuthContext,
    pub id: Uuid,
}

impl Operation for RevokeAny {
    const NAME: &'static str = "api_keys.revoke_any";
    const MODE: Mode = Mode::Write;
    type Output = ApiKey;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            self.actor.require_operator()?;
            let row = keys::revoke(cx.conn, None, self.id).await?;
            cx.after_commit(Effect::CredentialsChanged);
            tracing::info!(key_id = %row.id, tenant_id = %row.tenant_id, "API key revoked by the operator");
            Ok(to_api(row))
        })
    }
}
