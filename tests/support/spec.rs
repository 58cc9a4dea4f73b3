//! The wire against `/openapi.json`: every JSON response a test server sends on a route of
//! the spec is validated against the schema the spec declares for that route and status
//! (a JSON Schema 2020-12 validator over the served document, formats checked). A status
//! the spec does not list for the route is a violation too. Test servers record
//! violations; [`crate::TestApp`] fails the test that caused them when it is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web;
use serde_json::Value;

/// One operation of the spec: its method, path template and JSON pointer.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: String,
    pub template: String,
    segments: Vec<Option<String>>,
    pointer: String,
}

impl Operation {
    fn literals(&self) -> usize {
        self.segments.iter().filter(|s| s.is_some()).count()
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        if !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        parts.len() == self.segments.len()
            && parts.iter().zip(&self.segments).all(|(part, segment)| match segment {
                Some(literal) => literal == part,
                None => !part.is_empty(),
            })
    }

    /// The path parameters' names, in order.
    pub fn parameters(&self) -> Vec<String> {
        self.template
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect()
    }
}

/// The served spec, its operations, and compiled response validators.
pub struct Spec {
    document: Value,
    operations: Vec<Operation>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

impl Spec {
    /// The spec AOS serves at `/openapi.json`.
    pub fn aos() -> Arc<Self> {
        static SPEC: std::sync::OnceLock<Arc<Spec>> = std::sync::OnceLock::new();
        Arc::clone(SPEC.get_or_init(|| {
            let document = serde_json::to_value(aos_api::openapi()).unwrap_or_default();
            Arc::new(Self::new(document))
        }))
    }

    pub fn new(document: Value) -> Self {
        let mut operations = Vec::new();
        if let Some(paths) = document["paths"].as_object() {
            for (template, item) in paths {
                for method in ["get", "post", "put", "patch", "delete"] {
                    if item.get(method).is_some() {
                        let segments = template
                            .trim_end_matches('/')
                            .split('/')
                            .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                            .collect();
                        operations.push(Operation {
                            method: method.to_uppercase(),
                            template: template.clone(),
                            segments,
                            pointer: format!("/paths/{}/{method}", escape(template)),
                        });
                    }
                }
            }
        }
        // The most literal template wins, as in the router (`/integrations/mcp-servers`
        // before `/integrations/{id}`).
        operations.sort_by_key(|op| std::cmp::Reverse(op.literals()));
        Self {
            document,
            operations,
            validators: Mutex::new(HashMap::new()),
        }
    }

    pub fn document(&self) -> &Value {
        &self.document
    }

    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The operation a request reaches, if the spec has it.
    pub fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        self.operations.iter().find(|op| op.matches(method, path))
    }

    /// Checks one response; `Err` says what is wrong.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &[u8]) -> Result<(), String> {
        let Some(op) = self.operation(method, path) else {
            return Ok(());
        };
        let responses = self.document.pointer(&format!("{}/responses", op.pointer));
        let Some(responses) = responses.and_then(Value::as_object) else {
            return Err(format!("{} {}: the spec lists no responses", op.method, op.template));
        };
        let class = format!("{}XX", status / 100);
        let key = [status.to_string(), class, "default".to_owned()]
            .into_iter()
            .find(|k| responses.contains_key(k));
        let Some(key) = key else {
            return Err(format!(
                "{} {} answered {status}, which the spec does not list (it lists {:?})",
                op.method,
                op.template,
                responses.keys().collect::<Vec<_>>()
            ));
        };
        let schema_pointer = format!(
            "{}/responses/{}/content/application~1json/schema",
            op.pointer,
            escape(&key)
        );
        if self.document.pointer(&schema_pointer).is_none() {
            return Ok(());
        }
        let instance: Value = serde_json::from_slice(body).map_err(|err| {
            format!(
                "{} {} answered {status} with a body that is not JSON ({err})",
                op.method, op.template
            )
        })?;
        let validator = self.validator(&schema_pointer)?;
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .take(5)
            .map(|e| format!("at {}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} {} answered {status} with a body the spec does not allow: {}; body: {}",
                op.method,
                op.template,
                errors.join("; "),
                String::from_utf8_lossy(body).chars().take(400).collect::<String>()
            ))
        }
    }

    fn validator(&self, pointer: &str) -> Result<Arc<jsonschema::Validator>, String> {
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cache.get(pointer) {
            return Ok(Arc::clone(v));
        }
        // The whole document is the schema resource; `$ref` points at the response schema,
        // so its own `$ref`s into `#/components/schemas` resolve.
        let mut root = self.document.clone();
        if let Some(map) = root.as_object_mut() {
            // A URI fragment: the template's braces are percent-encoded.
            let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
            map.insert("$ref".into(), Value::String(format!("#{fragment}")));
            map.insert(
                "$schema".into(),
                Value::String("https://json-schema.org/draft/2020-12/schema".into()),
            );
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .map_err(|err| format!("the spec's schema at {pointer} does not compile: {err}"))?;
        let validator = Arc::new(validator);
        cache.insert(pointer.to_owned(), Arc::clone(&validator));
        Ok(validator)
    }
}

/// Violations seen by one test server.
#[derive(Clone, Default)]
pub struct Violations(pub Arc<Mutex<Vec<String>>>);

impl Violations {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Test-server middleware: validates every JSON response of a spec route.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let violations = req.app_data::<web::Data<Violations>>().cloned();
    let response = next.call(req).await?.map_into_boxed_body();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Some(violations) = violations.filter(|_| json) else {
        return Ok(response);
    };
    let status = response.status().as_u16();
    let (request, response) = response.into_parts();
    let (response, body) = response.into_parts();
    let bytes = actix_web::body::to_bytes(body).await.unwrap_or_default();
    if let Err(violation) = Spec::aos().check(&method, &path, status, &bytes) {
        violations.0.lock().unwrap_or_else(|e| e.into_inner()).push(violation);
    }
    Ok(ServiceResponse::new(request, response.set_body(BoxBody::new(bytes))))
}
