//! # aos-types
//!
//! AOS's vocabulary, typed: the ids of its nouns ([`ids`]) and the domain's words that are
//! stored and sent as strings ([`audit`]: event types, subject kinds, actor kinds).
//!
//! **Architecture invariant:** no I/O and no dependency on diesel, HTTP or any other layer
//! of ours; every layer and the SDK may *name* these types. Which layers may *query* with
//! them is a different rule: only `aos-drivers` (ARCHITECTURE.md). How a type is stored
//! (`DbUuid`, text columns) is `aos-models`'s business: it converts to and from these.
//!
//! **Boundary:** the strings these types read and write (`TOOL_INVOCATION_STARTED`,
//! `mcp_tool`, `founder`) are on the wire and in stored audit chains: renaming one is a
//! breaking change and would break the hash chain's recomputation of old events.

pub mod audit;
pub mod ids;

pub use audit::{
    ActorKind, AgentStatus, AuditEventType, IncidentStatus, IntegrationStatus, InvocationStatus, SubjectKind,
};
pub use ids::{
    AgentId, AgentManifestId, ApiKeyId, ApprovalId, CallId, IncidentId, IntegrationId, IntegrationKeyId, InvocationId,
    ServerId, TenantId, ToolId,
};
