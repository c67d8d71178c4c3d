//! `GET /v1/models`: what OpenAI client libraries and chat UIs (Open WebUI…) call first.
//! One model answers, whatever name a completion request gives.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;

use super::answer::model_id;
use crate::api::{ModelInfo, ModelList};
use crate::problem::OpenAiErrorBody;
use crate::{AppState, Kind, Lang, Problem};

fn model(state: &AppState) -> ModelInfo {
    ModelInfo {
        id: model_id(state),
        object: "model",
        created: state.started_at,
        owned_by: "cabildo",
    }
}

/// The model that answers.
#[utoipa::path(get, path = "/v1/models", tag = "answers",
    responses(
        (status = 200, description = "One model", body = ModelList),
        (status = 401, description = "No or bad credentials", body = OpenAiErrorBody),
    ))]
pub async fn list(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: vec![model(&state)],
    })
}

/// One model, by its id.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "answers",
    params(("id" = String, Path, description = "A model id from `GET /v1/models`")),
    responses(
        (status = 200, description = "The model", body = ModelInfo),
        (status = 404, description = "No such model", body = OpenAiErrorBody),
    ))]
pub async fn one(
    State(state): State<Arc<AppState>>,
    Lang(lang): Lang,
    Path(id): Path<String>,
) -> Result<Json<ModelInfo>, Problem> {
    let m = model(&state);
    if id == m.id {
        Ok(Json(m))
    } else {
        Err(Problem::new(
            Kind::NotFound,
            lang,
            format!(
                "the model {id:?} does not exist; this server answers as {:?}",
                m.id
            ),
        ))
    }
}
