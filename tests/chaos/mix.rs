//! What the load sends: the request mixes, and why each request was sent (so its answer can be
//! judged: a read must succeed, a bad request must get a 4xx).

use std::sync::Arc;

use hyper::Method;

/// What the load sends.
#[derive(Clone)]
pub enum Mix {
    /// `GET /v1/users/{id}` over these ids.
    Reads(Arc<Vec<String>>),
    /// Reads by id, and one list in four (lists always reach Postgres).
    ReadsAndLists(Arc<Vec<String>>),
    /// Reads, lists, creates, patches and deletes, with one request in ten a bad one.
    Soak(Arc<Vec<String>>),
}

/// Why a request was sent, so that its status can be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Intent {
    Read,
    Write,
    /// A request the service must refuse with a 4xx.
    Bad,
}

/// One request, ready to send.
pub struct Planned {
    pub intent: Intent,
    pub method: Method,
    pub path: String,
    pub body: Option<String>,
    pub content_type: Option<&'static str>,
}

/// The random draws and identity of the worker a request is planned for.
pub struct Draw {
    /// 0–99: which kind of request.
    pub roll: u64,
    /// Which id, limit or bad request.
    pub pick: usize,
    pub worker: usize,
    pub sequence: u64,
}

impl Mix {
    /// The next request; `created` holds the users this worker made, which it may patch or delete.
    pub fn plan(&self, draw: &Draw, created: &mut Vec<String>) -> Planned {
        let pick = draw.pick;
        let read = |ids: &Arc<Vec<String>>| Planned::get(Intent::Read, format!("/v1/users/{}", ids[pick % ids.len()]));
        match self {
            Mix::Reads(ids) => read(ids),
            Mix::ReadsAndLists(_) if draw.roll < 25 => {
                Planned::get(Intent::Read, format!("/v1/users?limit={}", 1 + pick % 50))
            }
            Mix::ReadsAndLists(ids) => read(ids),
            Mix::Soak(ids) => plan_soak(ids, draw, created),
        }
    }
}

/// 55% reads by id, 15% lists, 10% creates, 5% patches, 5% deletes, 10% bad requests.
fn plan_soak(ids: &Arc<Vec<String>>, draw: &Draw, created: &mut Vec<String>) -> Planned {
    let (pick, worker, sequence) = (draw.pick, draw.worker, draw.sequence);
    match draw.roll {
        0..55 => Planned::get(Intent::Read, format!("/v1/users/{}", ids[pick % ids.len()])),
        55..70 => Planned::get(Intent::Read, format!("/v1/users?limit={}", 1 + pick % 100)),
        70..80 => Planned::json(
            Intent::Write,
            Method::POST,
            "/v1/users".to_owned(),
            format!(r#"{{"name":"soak {worker} {sequence}","email":"soak-{worker}-{sequence}@example.org"}}"#),
        ),
        80..85 if !created.is_empty() => Planned::json(
            Intent::Write,
            Method::PATCH,
            format!("/v1/users/{}", created[pick % created.len()]),
            format!(r#"{{"name":"patched {sequence}","avatar_url":"https://example.org/{pick}.png"}}"#),
        ),
        85..90 if !created.is_empty() => {
            let id = created.swap_remove(pick % created.len());
            Planned {
                intent: Intent::Write,
                method: Method::DELETE,
                path: format!("/v1/users/{id}"),
                body: None,
                content_type: None,
            }
        }
        80..90 => Planned::get(Intent::Read, format!("/v1/users/{}", ids[pick % ids.len()])),
        _ => Planned::bad(pick),
    }
}

impl Planned {
    fn get(intent: Intent, path: String) -> Planned {
        Planned {
            intent,
            method: Method::GET,
            path,
            body: None,
            content_type: None,
        }
    }

    fn json(intent: Intent, method: Method, path: String, body: String) -> Planned {
        Planned {
            intent,
            method,
            path,
            body: Some(body),
            content_type: Some("application/json"),
        }
    }

    /// One of the bad requests a busy API sees all day; each must get a 4xx.
    fn bad(pick: usize) -> Planned {
        let json = Some("application/json");
        let (method, path, body, content_type) = match pick % 8 {
            0 => (Method::GET, "/v1/users/not-a-uuid", None, None),
            1 => (
                Method::GET,
                "/v1/users/00000000-0000-4000-8000-000000000000",
                None,
                None,
            ),
            2 => (Method::GET, "/v1/users?limit=0", None, None),
            3 => (Method::GET, "/v1/users?cursor=zz", None, None),
            4 => (Method::POST, "/v1/users", Some("{\"name\":"), json),
            5 => (
                Method::POST,
                "/v1/users",
                Some("{\"name\":\"\",\"role\":\"admin\"}"),
                json,
            ),
            6 => (
                Method::POST,
                "/v1/users",
                Some("name=x"),
                Some("application/x-www-form-urlencoded"),
            ),
            _ => (Method::PUT, "/v1/users", None, None),
        };
        Planned {
            intent: Intent::Bad,
            method,
            path: path.to_owned(),
            body: body.map(str::to_owned),
            content_type,
        }
    }
}
