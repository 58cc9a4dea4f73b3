//! Tenant administration (platform operator only).

use aos_engines::tenants::{self as engine, Cursor, Tenant, TenantUpdate};
use aos_schemas::tenants as api;
use aos_schemas::{ListEnvelope, ListMeta};
use uuid::Uuid;

use crate::context::AuthContext;
use crate::error::SpineError;
use crate::op::{Effect, Mode, OpFuture, Operation, OperationContext};
use crate::ops::cursor;

/// Default page size when the caller gives none.
pub const DEFAULT_PAGE: u32 = 50;

pub(crate) fn to_api(t: Tenant) -> api::Tenant {
    let status = match t.status() {
        engine::TenantStatus::Active => api::TenantStatus::Active,
        engine::TenantStatus::Suspended => api::TenantStatus::Suspended,
        engine::TenantStatus::Terminated => api::TenantStatus::Terminated,
    };
    let onboarding_state = match t.onboarding() {
        engine::OnboardingState::Created => api::OnboardingState::Created,
        engine::OnboardingState::IdentityVerified => api::OnboardingState::IdentityVerified,
        engine::OnboardingState::IntegrationConnected => api::OnboardingState::IntegrationConnected,
        engine::OnboardingState::Complete => api::OnboardingState::Complete,
    };
    api::Tenant {
        id: t.id.into(),
        name: t.name,
        status,
        onboarding_state,
        created_at: t.created_at.into(),
        updated_at: t.updated_at.into(),
    }
}

/// `tenants.create`
pub struct Create {
    pub actor: AuthContext,
    pub request: api::CreateTenantRequest,
}

impl Operation for Create {
    const NAME: &'static str = "tenants.create";
    const MODE: Mode = Mode::Write;
    type Output = api::Tenant;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            self.actor.require_operator()?;
            Ok(to_api(engine::create(cx.conn, &self.request.name).await?))
        })
    }
}

/// `tenants.get`
pub struct Get {
    pub actor: AuthContext,
    pub id: Uuid,
}

impl Operation for Get {
    const NAME: &'static str = "tenants.get";
    const MODE: Mode = Mode::Read;
    type Output = api::Tenant;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            self.actor.require_operator()?;
            Ok(to_api(engine::get(cx.conn, self.id).await?))
        })
    }
}

/// `tenants.list`
pub struct List {
    pub actor: AuthContext,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl Operation for List {
    const NAME: &'static str = "tenants.list";
    const MODE: Mode = Mode::Read;
    type Output = ListEnvelope<api::Tenant>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            self.actor.require_operator()?;
            let limit = match self.limit {
                None => DEFAULT_PAGE,
                Some(n) if (1..=engine::MAX_PAGE).contains(&n) => n,
                Some(_) => {
                    return Err(SpineError::new(
                        aos_schemas::ErrorCode::ValidationFailed,
                        format!("limit: must be between 1 and {}", engine::MAX_PAGE),
                    )
                    .on_field("limit"));
                }
            };
            let after = self
                .cursor
                .as_deref()
                .map(cursor::decode)
                .transpose()?
                .map(|(created_at, id)| Cursor { created_at, id });
            let (rows, next, total) = engine::list(cx.conn, after, limit).await?;
            Ok(ListEnvelope {
                data: rows.into_iter().map(to_api).collect(),
                meta: ListMeta {
                    total: Some(total),
                    limit,
                    next_cursor: next.map(|c| cursor::encode(c.created_at, c.id)),
                },
            })
        })
    }
}

/// `tenants.update`
pub struct Update {
    pub actor: AuthContext,
    pub id: Uuid,
    pub request: api::UpdateTenantRequest,
}

impl Operation for Update {
    const NAME: &'static str = "tenants.update";
    const MODE: Mode = Mode::Write;
    type Output = api::Tenant;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            self.actor.require_operator()?;
            let update = TenantUpdate {
                name: self.request.name,
                status: self.request.status.map(|s| match s {
                    api::TenantStatus::Active => engine::TenantStatus::Active,
                    api::TenantStatus::Suspended => engine::TenantStatus::Suspended,
                    api::TenantStatus::Terminated => engine::TenantStatus::Terminated,
                }),
                onboarding: self.request.onboarding_state.map(|s| match s {
                    api::OnboardingState::Created => engine::OnboardingState::Created,
                    api::OnboardingState::IdentityVerified => engine::OnboardingState::IdentityVerified,
                    api::OnboardingState::IntegrationConnected => engine::OnboardingState::IntegrationConnected,
                    api::OnboardingState::Complete => engine::OnboardingState::Complete,
                }),
            };
            let tenant = engine::update(cx.conn, self.id, update).await?;
            cx.after_commit(Effect::CredentialsChanged);
            Ok(to_api(tenant))
        })
    }
}
