//! Typed test actors on the SDK (`aos-client`): the platform operator, a tenant admin and
//! an agent's key, so a test says who acts instead of passing bare key strings around.

use aos_client::Client;
use aos_client::schemas::agents::{CreateAgentKeyRequest, CreateAgentRequest};
use aos_client::schemas::api_keys::CreateApiKeyRequest;
use aos_client::schemas::tenants::CreateTenantRequest;
use secrecy::SecretString;
use uuid::Uuid;

use crate::{OPERATOR_TOKEN, TestApp};

/// An SDK client of `app` holding `key`.
pub fn client(app: &TestApp, key: &str) -> Client {
    Client::builder(app.base.clone())
        .api_key(SecretString::from(key.to_owned()))
        .build()
        .expect("a client of the test server")
}

/// The platform operator.
pub fn operator(app: &TestApp) -> Client {
    client(app, OPERATOR_TOKEN)
}

/// A tenant admin: a new tenant (made by the operator) and a key of it with `scopes`.
pub struct TenantAdmin {
    pub tenant_id: Uuid,
    pub client: Client,
}

impl TenantAdmin {
    pub async fn new(app: &TestApp, name: &str, scopes: &[&str]) -> Self {
        let operator = operator(app);
        let tenant = operator
            .create_tenant(&CreateTenantRequest { name: name.to_owned() })
            .await
            .expect("the operator creates a tenant");
        let created = operator
            .admin_create_api_key(
                tenant.id,
                &CreateApiKeyRequest {
                    name: "admin".into(),
                    scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                    expires_at: None,
                },
            )
            .await
            .expect("the operator creates a key");
        assert!(created.key.starts_with("aos_"), "a usable secret comes back once");
        Self {
            tenant_id: tenant.id,
            client: client(app, &created.key),
        }
    }
}

/// An agent's key: the agent (created by `admin` with `request`) and a client holding one
/// of its keys (default scopes).
pub struct AgentKey {
    pub agent_id: Uuid,
    pub key_id: Uuid,
    pub client: Client,
}

impl AgentKey {
    pub async fn new(app: &TestApp, admin: &Client, request: &CreateAgentRequest) -> Self {
        let agent = admin.create_agent(request).await.expect("the admin creates an agent");
        let created = admin
            .create_agent_key(
                agent.id,
                &CreateAgentKeyRequest {
                    name: "agent".into(),
                    scopes: None,
                    expires_at: None,
                },
            )
            .await
            .expect("the admin creates a key for the agent");
        Self {
            agent_id: agent.id,
            key_id: created.api_key.id,
            client: client(app, &created.key),
        }
    }
}
