//! The Documents view's commands (see `ui/src/backend/ipc.ts`, their only caller). Each is a few
//! lines over `Assistant`'s document API (`hearth_assistant::documents`, `summarize`, `ask`):
//! pick and add documents, list and delete them, summarize one with streamed progress, cancel or
//! resume a summary, read the passages a citation points at, and ask a question with sources.
//!
//! A caller may rely on: errors cross as `{code, message}` like every other command (a document
//! that cannot be read gives a `documents.*` code and leaves the list unchanged); adding runs the
//! extraction off the UI thread; the picker returns None when the user cancels; summary and
//! answer events arrive on the `Channel` given, in the order the assistant sends them.

use std::path::PathBuf;
use std::sync::Arc;

use hearth_assistant::{
    AddedDocument, AppError, AskEvent, AskRequest, AskStarted, Assistant, DocumentInfo,
    DocumentOptions, DocumentSummary, Passage, RetrievalStatus, SummarizeEvent, SummarizeRequest,
    SummaryStarted,
};
use tauri::ipc::Channel;
use tauri::AppHandle;
use tauri_plugin_dialog::DialogExt;

use crate::AppState;

type Res<T> = Result<T, AppError>;
type State<'a> = tauri::State<'a, Arc<AppState>>;

/// The file types the picker offers (what `hearth_documents` extracts).
const EXTENSIONS: &[&str] = &[
    "pdf", "docx", "odt", "epub", "html", "htm", "xhtml", "md", "markdown", "txt", "text",
];

/// Runs `f` with the assistant on a thread where blocking is fine.
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(Assistant) -> Res<T> + Send + 'static,
) -> Res<T> {
    let assistant = state.assistant()?;
    off_ui(move || f(assistant)).await
}

async fn off_ui<T: Send + 'static>(f: impl FnOnce() -> Res<T> + Send + 'static) -> Res<T> {
    tauri::async_runtime::spawn_blocking(f).await.map_err(|e| {
        AppError::new(
            "app.internal",
            format!("The request stopped unexpectedly: {e}"),
        )
    })?
}

/// Shows the system's file picker for documents to add; None when the user cancels.
#[tauri::command]
pub async fn documents_pick(app: AppHandle, title: String) -> Res<Option<Vec<String>>> {
    let dialog = app
        .dialog()
        .file()
        .set_title(title)
        .add_filter("Documents", EXTENSIONS);
    let picked = off_ui(move || Ok(dialog.blocking_pick_files())).await?;
    Ok(picked.map(|files| {
        files
            .into_iter()
            .filter_map(|p| p.into_path().ok())
            .map(|p| p.display().to_string())
            .collect()
    }))
}

/// Reads, chunks and stores a document (the same bytes again: the stored one, `alreadyKnown`).
#[tauri::command]
pub async fn document_add(state: State<'_>, path: String) -> Res<AddedDocument> {
    blocking(&state, move |a| {
        a.add_document(&PathBuf::from(path), &DocumentOptions::default())
    })
    .await
}

/// Every stored document, newest first.
#[tauri::command]
pub async fn documents_list(state: State<'_>) -> Res<Vec<DocumentInfo>> {
    blocking(&state, |a| a.documents()).await
}

#[tauri::command]
pub async fn document_delete(state: State<'_>, id: i64) -> Res<()> {
    blocking(&state, move |a| a.delete_document(id)).await
}

/// Starts (or resumes, or returns the finished) summary; events stream through `on_event`.
#[tauri::command]
pub async fn document_summarize(
    state: State<'_>,
    request: SummarizeRequest,
    on_event: Channel<SummarizeEvent>,
) -> Res<SummaryStarted> {
    blocking(&state, move |a| {
        // A send fails only when the window is gone; the parts are still stored.
        a.summarize(request, crate::commands::to_channel(on_event))
    })
    .await
}

/// Resumes a summary left unfinished, with the options it was started with.
#[tauri::command]
pub async fn summary_resume(
    state: State<'_>,
    summary_id: i64,
    on_event: Channel<SummarizeEvent>,
) -> Res<SummaryStarted> {
    blocking(&state, move |a| {
        a.resume_summary(summary_id, crate::commands::to_channel(on_event))
    })
    .await
}

/// Stops a summary or an answer (its job id); stored parts are kept.
#[tauri::command]
pub fn document_cancel(state: State<'_>, job_id: u64) -> Res<()> {
    state.assistant()?.cancel(job_id);
    Ok(())
}

/// Summaries a previous run of the app left unfinished.
#[tauri::command]
pub async fn summaries_interrupted(state: State<'_>) -> Res<Vec<DocumentSummary>> {
    blocking(&state, |a| a.interrupted_summaries()).await
}

/// A document's summaries, oldest first.
#[tauri::command]
pub async fn document_summaries(state: State<'_>, document_id: i64) -> Res<Vec<DocumentSummary>> {
    blocking(&state, move |a| a.document_summaries(document_id)).await
}

/// What a citation opens: one passage with its pages or section.
#[tauri::command]
pub async fn passage_get(state: State<'_>, chunk_id: i64) -> Res<Passage> {
    blocking(&state, move |a| a.passage(chunk_id)).await
}

/// How a document's passages are found for questions (words, or words and meaning), and
/// whether the search model is installed.
#[tauri::command]
pub async fn retrieval_status(state: State<'_>, document_id: i64) -> Res<RetrievalStatus> {
    blocking(&state, move |a| a.retrieval_status(document_id)).await
}

/// A question about one document; the answer streams through `on_event`.
#[tauri::command]
pub async fn document_ask(
    state: State<'_>,
    request: AskRequest,
    on_event: Channel<AskEvent>,
) -> Res<AskStarted> {
    blocking(&state, move |a| {
        a.ask(request, crate::commands::to_channel(on_event))
    })
    .await
}
