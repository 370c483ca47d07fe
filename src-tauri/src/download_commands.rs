//! The commands of the Models view's catalog and downloads (see `ui/src/backend/ipc.ts`, their
//! only caller): each is a few lines over [`hearth_assistant::Downloads`]. Download progress
//! streams through a `Channel`; errors cross as `{code, message}`.

use std::sync::{Arc, OnceLock};

use hearth_assistant::{
    AppError, DownloadEvent, Downloads, MachineCatalog, PullRequest, PullStarted, Recommendation,
};
use tauri::ipc::Channel;

use crate::AppState;

type Res<T> = Result<T, AppError>;

/// The app's one [`Downloads`], made on first use from the assistant.
#[derive(Default)]
pub struct DownloadsState(OnceLock<Downloads>);

type States<'a> = (
    tauri::State<'a, Arc<AppState>>,
    tauri::State<'a, DownloadsState>,
);

fn downloads(app: &Arc<AppState>, state: &DownloadsState) -> Res<Downloads> {
    let assistant = app.assistant()?;
    Ok(state.0.get_or_init(|| Downloads::new(assistant)).clone())
}

/// Runs `f` on a thread where blocking is fine (hardware detection, SQLite).
async fn blocking<T: Send + 'static>(
    (app, state): States<'_>,
    f: impl FnOnce(Downloads) -> Res<T> + Send + 'static,
) -> Res<T> {
    let d = downloads(&app, &state)?;
    tauri::async_runtime::spawn_blocking(move || f(d))
        .await
        .map_err(|e| {
            AppError::new(
                "app.internal",
                format!("The request stopped unexpectedly: {e}"),
            )
        })?
}

#[tauri::command]
pub async fn catalog_for_machine(
    app: tauri::State<'_, Arc<AppState>>,
    state: tauri::State<'_, DownloadsState>,
    context: Option<u64>,
) -> Res<MachineCatalog> {
    blocking((app, state), move |d| d.catalog(context)).await
}

#[tauri::command]
pub async fn model_recommendation(
    app: tauri::State<'_, Arc<AppState>>,
    state: tauri::State<'_, DownloadsState>,
) -> Res<Recommendation> {
    blocking((app, state), |d| d.recommendation()).await
}

#[tauri::command]
pub async fn model_pull(
    app: tauri::State<'_, Arc<AppState>>,
    state: tauri::State<'_, DownloadsState>,
    request: PullRequest,
    on_event: Channel<DownloadEvent>,
) -> Res<PullStarted> {
    blocking((app, state), move |d| {
        // A send fails only when the window is gone; the download goes on.
        d.pull(
            request,
            Box::new(move |e| {
                let _ = on_event.send(e);
            }),
        )
    })
    .await
}

/// Downloads the search model (the embedding model that finds document passages by meaning);
/// events as for [`model_pull`], ending with `installed`. Cancel with `model_pull_cancel`.
#[tauri::command]
pub async fn search_model_pull(
    app: tauri::State<'_, Arc<AppState>>,
    state: tauri::State<'_, DownloadsState>,
    on_event: Channel<DownloadEvent>,
) -> Res<PullStarted> {
    blocking((app, state), move |d| {
        d.pull_embedding_model(Box::new(move |e| {
            let _ = on_event.send(e);
        }))
    })
    .await
}

#[tauri::command]
pub fn model_pull_pause(
    app: tauri::State<'_, Arc<AppState>>,
    state: tauri::State<'_, DownloadsState>,
    job_id: u64,
) -> Res<()> {
    downloads(&app, &state)?.pause(job_id)
}

#[tauri::command]
pub async fn model_pull_cancel(
    app: tauri::State<'_, Arc<AppState>>,
    state: tauri::State<'_, DownloadsState>,
    job_id: u64,
) -> Res<()> {
    // Cancelling a paused pull asks the hub which partial file to delete.
    blocking((app, state), move |d| d.cancel(job_id)).await
}
