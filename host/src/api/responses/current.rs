//! A response as it is now: its row once its run has ended, or, while the run goes, the row
//! with the run's status and the output the run has written so far.

use serde_json::json;

use crate::error::ApiResult;
use crate::state::AppState;
use assistants_core::model::ids::ResponseId;
use assistants_core::model::response;
use assistants_core::model::{Message, ResponseObject, RunStep};

/// The response as it is now, stored or not (the create request answers with it either way).
pub(super) async fn current(
    state: &AppState,
    project: &str,
    id: &ResponseId,
) -> ApiResult<ResponseObject> {
    let mut doc = state.store.get::<ResponseObject>(project, id).await?;
    if doc.finished() {
        return Ok(doc);
    }
    let run_id = response::run_id(id);
    let Some((run, rec)) = state.store.run_and_record(project, &run_id).await? else {
        return Ok(doc);
    };
    if run.status.is_terminal() {
        // Ended between the two reads: the row has it now.
        return Ok(state.store.get::<ResponseObject>(project, id).await?);
    }
    let steps = state.store.by_run::<RunStep>(&run_id).await?;
    let messages = state.store.by_run::<Message>(&run_id).await?;
    let output = assistants_worker::responses::output(&steps, &messages, &rec);
    assistants_worker::responses::apply_run(&mut doc, &run, output);
    // A response that is not in the background is in progress from its creation.
    if doc.status() == "queued" && doc.get("background") != Some(&json!(true)) {
        doc.set("status", json!("in_progress"));
    }
    Ok(doc)
}
