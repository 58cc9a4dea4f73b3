//! The actix-web application: routes, extractor configuration, middleware, OpenAPI.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, web};
use aos_schemas::ErrorCode;
use aos_spine::Spine;
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::{AppExt, UtoipaApp};

use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::openapi::{BearerAuth, ErrorResponses};
use crate::{auth, request_context, routes};

#[derive(OpenApi)]
#[openapi(
    info(title = "AOS", description = "The AOS governance gateway API."),
    components(schemas(
        aos_schemas::ErrorEnvelope,
        aos_schemas::ErrorBody,
        aos_schemas::OpenAiErrorEnvelope,
        aos_schemas::OpenAiErrorBody,
        aos_schemas::ListMeta
    )),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

fn register<T>(app: UtoipaApp<T>) -> UtoipaApp<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    app.service(routes::system::healthz)
        .service(routes::system::readyz)
        .service(routes::governance::jwks)
        .service(routes::mcp_endpoint::protected_resource)
        .service(routes::mcp_endpoint::protected_resource_mcp)
        .service(
            utoipa_actix_web::scope("/api/v1/admin")
                .service(routes::admin_tenants::create)
                .service(routes::admin_tenants::list)
                .service(routes::admin_tenants::get)
                .service(routes::admin_tenants::update)
                .service(routes::api_keys::admin_create)
                .service(routes::api_keys::admin_list)
                .service(routes::api_keys::admin_revoke)
                .service(routes::proxy::writer_stats)
                .service(routes::governance::put_platform_policy)
                .service(routes::governance::delete_platform_policy),
        )
        .service(
            utoipa_actix_web::scope("/api/v1/integrations/mcp-servers")
                .service(routes::mcp_servers::register)
                .service(routes::mcp_servers::list)
                .service(routes::mcp_servers::get)
                .service(routes::mcp_servers::delete_server)
                .service(routes::mcp_servers::discover)
                .service(routes::mcp_servers::health)
                .service(routes::mcp_servers::tools)
                .service(routes::mcp_servers::tool)
                .service(routes::mcp_servers::enable_tool)
                .service(routes::mcp_servers::disable_tool)
                .service(routes::mcp_servers::set_tool_risk)
                .service(routes::mcp_servers::invocations)
                .service(routes::governance::invoke)
                .service(routes::governance::manifest),
        )
        // The SDK proposal's paths (PIN-516 phase 5): the same handlers.
        .service(
            utoipa_actix_web::scope("/api/v1/mcp/servers")
                .service(routes::mcp_servers::register)
                .service(routes::mcp_servers::list)
                .service(routes::mcp_servers::get)
                .service(routes::mcp_servers::delete_server)
                .service(routes::mcp_servers::discover)
                .service(routes::mcp_servers::health)
                .service(routes::governance::alias_health)
                .service(routes::mcp_servers::tools)
                .service(routes::mcp_servers::tool)
                .service(routes::mcp_servers::invocations)
                .service(routes::governance::invoke)
                .service(routes::governance::manifest),
        )
        .service(
            utoipa_actix_web::scope("/api/v1/mcp")
                .service(routes::mcp_endpoint::catalog)
                .service(routes::governance::alias_invoke)
                .service(routes::governance::alias_enable)
                .service(routes::governance::alias_disable)
                .service(routes::governance::alias_risk),
        )
        .service(
            utoipa_actix_web::scope("/api/v1/killswitch")
                .service(routes::killswitch::status)
                .service(routes::killswitch::freeze_tenant)
                .service(routes::killswitch::unfreeze_tenant)
                .service(routes::killswitch::freeze_key)
                .service(routes::killswitch::unfreeze_key),
        )
        .service(
            utoipa_actix_web::scope("/api/v1/proxy")
                .service(routes::proxy::get_settings)
                .service(routes::proxy::put_settings)
                .service(routes::proxy::patch_settings)
                .service(routes::proxy::list_calls)
                .service(routes::proxy::get_call)
                .service(routes::proxy::replay),
        )
        .service(
            utoipa_actix_web::scope("/v1")
                .service(routes::proxy::chat_completions)
                .service(routes::proxy::embeddings)
                .service(routes::proxy::models)
                .service(routes::proxy::status),
        )
        .service(
            utoipa_actix_web::scope("/api/v1/integrations")
                .service(routes::telemetry::create_integration)
                .service(routes::telemetry::list_integrations)
                .service(routes::telemetry::get_integration)
                .service(routes::telemetry::update_integration)
                .service(routes::telemetry::delete_integration)
                .service(routes::telemetry::issue_key)
                .service(routes::telemetry::list_keys)
                .service(routes::telemetry::revoke_key),
        )
        .service(
            utoipa_actix_web::scope("/api/v1/telemetry")
                .service(routes::telemetry::ingest_one)
                .service(routes::telemetry::ingest_batch)
                .service(routes::telemetry::summary)
                .service(routes::telemetry::daily)
                .service(routes::telemetry::history),
        )
        .service(
            utoipa_actix_web::scope("/api/v1/agents")
                .service(routes::agents::create)
                .service(routes::agents::list)
                .service(routes::agents::verify_manifest)
                .service(routes::agents::get)
                .service(routes::agents::update)
                .service(routes::agents::remove)
                .service(routes::agents::create_key)
                .service(routes::agents::list_keys)
                .service(routes::agents::issue_manifest)
                .service(routes::agents::list_manifests)
                .service(routes::agents::latest_manifest)
                .service(routes::agents::get_manifest)
                .service(routes::agents::freeze)
                .service(routes::agents::unfreeze),
        )
        .service(
            utoipa_actix_web::scope("/api/v1")
                .service(routes::session::context)
                .service(routes::api_keys::create)
                .service(routes::api_keys::list)
                .service(routes::api_keys::revoke)
                .service(routes::governance::create_approval)
                .service(routes::governance::list_approvals)
                .service(routes::governance::get_approval)
                .service(routes::governance::approve)
                .service(routes::governance::deny)
                .service(routes::governance::audit_events)
                .service(routes::governance::audit_verify)
                .service(routes::governance::list_incidents)
                .service(routes::governance::get_incident)
                .service(routes::governance::resolve_incident)
                .service(routes::governance::get_policy)
                .service(routes::governance::put_policy)
                .service(routes::governance::delete_policy)
                .service(routes::governance::update_settings),
        )
}

/// The OpenAPI 3.1 document of every route, generated from the handlers, with the error
/// answers every operation can give ([`crate::openapi`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = register(App::new().into_utoipa_app().openapi(ApiDoc::openapi()))
        .split_for_parts()
        .1;
    ErrorResponses.modify(&mut doc);
    doc
}

/// Every route's path template and methods, from the OpenAPI document plus the routes it
/// does not describe (`/mcp`, `/mcp/ws`, `/openapi.json`): what a 405 lists in `Allow`.
pub(crate) struct RouteTable(Vec<(Vec<Option<String>>, Vec<&'static str>)>);

impl RouteTable {
    fn new(doc: &utoipa::openapi::OpenApi) -> Self {
        let segments = |template: &str| -> Vec<Option<String>> {
            template
                .trim_end_matches('/')
                .split('/')
                .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                .collect()
        };
        let mut routes: Vec<_> = doc
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let methods = crate::openapi::operations(item)
                    .map(|(method, _)| match method {
                        "get" => "GET",
                        "post" => "POST",
                        "put" => "PUT",
                        "patch" => "PATCH",
                        _ => "DELETE",
                    })
                    .collect();
                (segments(template), methods)
            })
            .collect();
        routes.push((segments("/mcp"), vec!["GET", "POST", "DELETE"]));
        routes.push((segments("/mcp/ws"), vec!["GET"]));
        routes.push((segments("/mcp/agents/{agent_id}"), vec!["GET", "POST", "DELETE"]));
        routes.push((segments("/mcp/agents/{agent_id}/ws"), vec!["GET"]));
        routes.push((segments("/openapi.json"), vec!["GET"]));
        Self(routes)
    }

    /// The methods some route at `path` answers (empty: no route has this path).
    fn methods(&self, path: &str) -> Vec<&'static str> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let mut methods: Vec<&'static str> = self
            .0
            .iter()
            .filter(|(segments, _)| {
                segments.len() == parts.len()
                    && segments.iter().zip(&parts).all(|(s, p)| match s {
                        Some(literal) => literal == p,
                        None => !p.is_empty(),
                    })
            })
            .flat_map(|(_, methods)| methods.iter().copied())
            .collect();
        methods.sort_unstable();
        methods.dedup();
        methods
    }
}

/// No handler took the request: 405 with `Allow` when the path is a route that answers
/// other methods, else 404.
async fn no_route(req: HttpRequest, routes: web::Data<RouteTable>) -> Result<HttpResponse, ApiError> {
    let allowed = routes.methods(req.path());
    if allowed.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no route for {} {}", req.method(), req.path()),
        ));
    }
    let allow = allowed.join(", ");
    let error = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}; allowed: {allow}", req.method(), req.path()),
    );
    let mut response = actix_web::ResponseError::error_response(&error);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    Ok(response)
}

/// A path parameter that is not what the route expects. Every path parameter of AOS is
/// an id (a UUID), so the message names the first that is not one.
fn path_error(req: &HttpRequest) -> ApiError {
    let bad = req
        .match_info()
        .iter()
        .find(|(_, value)| uuid::Uuid::parse_str(value).is_err());
    match bad {
        Some((name, value)) => {
            let shown: String = value.chars().take(64).collect();
            ApiError {
                field: Some(name.to_owned()),
                ..ApiError::new(
                    ErrorCode::BadRequest,
                    format!("path parameter `{name}` must be a UUID; got `{shown}`"),
                )
            }
        }
        None => ApiError::new(ErrorCode::BadRequest, "a path parameter is not of the expected form"),
    }
}

/// The whole application for one worker.
pub fn app(
    spine: Spine,
    config: ApiConfig,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = config.max_body_bytes;
    let endpoint = web::Data::new(routes::mcp_endpoint::Endpoint {
        gateway: spine.mcp_gateway(aos_spine::ops::gateway::McpGatewaySettings {
            max_message_bytes: config.mcp.max_message_bytes,
            notify_poll: std::time::Duration::from_millis(config.mcp.notify_poll_ms),
        }),
        config: config.mcp.clone(),
    });
    let (app, _) = register(App::new().into_utoipa_app().openapi(ApiDoc::openapi())).split_for_parts();
    let spec = openapi();
    let routes = web::Data::new(RouteTable::new(&spec));
    let doc = web::Data::new(spec.to_json().unwrap_or_else(|_| "{}".to_owned()));
    app.app_data(web::Data::new(spine))
        .app_data(endpoint)
        .app_data(doc)
        .app_data(routes)
        .app_data(
            web::JsonConfig::default()
                .limit(limit)
                .content_type_required(true)
                .error_handler(|err, _| ApiError::from_json(&err).into()),
        )
        .app_data(web::PayloadConfig::new(limit))
        .app_data(web::Data::new(crate::extract::BodyTimeout(
            std::time::Duration::from_millis(config.body_read_timeout_ms),
        )))
        .app_data(web::PathConfig::default().error_handler(|_, req| path_error(req).into()))
        .app_data(web::QueryConfig::default().error_handler(|err, _| {
            ApiError::new(ErrorCode::BadRequest, format!("invalid query string: {err}")).into()
        }))
        .route(
            "/openapi.json",
            web::get().to(|doc: web::Data<String>| async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(doc.get_ref().clone())
            }),
        )
        // AOS as an MCP server (not in the OpenAPI document: JSON-RPC, not REST).
        .route("/mcp", web::post().to(routes::mcp_endpoint::http))
        .route("/mcp", web::get().to(routes::mcp_endpoint::http))
        .route("/mcp", web::delete().to(routes::mcp_endpoint::http))
        .route("/mcp/ws", web::get().to(routes::mcp_endpoint::websocket))
        .route(
            "/mcp/agents/{agent_id}",
            web::post().to(routes::mcp_endpoint::agent_http),
        )
        .route(
            "/mcp/agents/{agent_id}",
            web::get().to(routes::mcp_endpoint::agent_http),
        )
        .route(
            "/mcp/agents/{agent_id}",
            web::delete().to(routes::mcp_endpoint::agent_http),
        )
        .route(
            "/mcp/agents/{agent_id}/ws",
            web::get().to(routes::mcp_endpoint::agent_websocket),
        )
        .default_service(web::to(no_route))
        // Inner to outer: authentication runs inside the request context, so its
        // refusals carry the request id.
        .wrap(from_fn(auth::middleware))
        .wrap(from_fn(request_context::middleware))
}
