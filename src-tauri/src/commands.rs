//! The commands the UI calls (see `ui/src/backend/ipc.ts`, their only caller). Each runs its work
//! on a blocking thread and calls one `Assistant` method; errors cross as `{code, message}`.

use std::path::PathBuf;
use std::sync::Arc;

use hearth_assistant::{
    AppError, Assistant, ChatEvent, ConversationSummary, InstalledModel, SearchHit, SendRequest,
    Settings, StartedJob, ThreadMessage,
};
use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;
use tauri::AppHandle;
use tauri_plugin_dialog::DialogExt;
use tauri_plugin_opener::OpenerExt;

use crate::{data_folder, AppState};

type Res<T> = Result<T, AppError>;
type State<'a> = tauri::State<'a, Arc<AppState>>;

/// Runs `f` with the assistant on a thread where blocking is fine.
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(Assistant) -> Res<T> + Send + 'static,
) -> Res<T> {
    let assistant = state.assistant()?;
    tauri::async_runtime::spawn_blocking(move || f(assistant))
        .await
        .map_err(|e| {
            AppError::new(
                "app.internal",
                format!("The request stopped unexpectedly: {e}"),
            )
        })?
}

/// An assistant event sink that forwards each event to the window through `channel`.
pub(crate) fn to_channel<E>(channel: Channel<E>) -> Box<dyn Fn(E) + Send + Sync>
where
    E: tauri::ipc::IpcResponse + Send + Sync + 'static,
{
    // A send fails only when the window is gone; what the assistant produced is still stored.
    Box::new(move |event| {
        let _ = channel.send(event);
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    version: String,
    /// Something to tell the user once (e.g. a damaged database was set aside).
    notice: Option<String>,
    /// Why the data could not be opened; the UI shows only this when set.
    startup_error: Option<AppError>,
    /// The data folder chosen in Settings for the next start.
    data_dir_next: Option<String>,
    /// `$HEARTH_DATA_DIR` decides the data folder.
    data_dir_from_env: bool,
}

#[tauri::command]
pub fn app_info(app: AppHandle, state: State<'_>) -> AppInfo {
    AppInfo {
        version: app.package_info().version.to_string(),
        notice: state.notice.clone(),
        startup_error: state.assistant.as_ref().err().cloned(),
        data_dir_next: data_folder::remembered(&app).map(|p| p.display().to_string()),
        data_dir_from_env: data_folder::from_env(),
    }
}

#[tauri::command]
pub async fn conversations_list(state: State<'_>) -> Res<Vec<ConversationSummary>> {
    blocking(&state, |a| a.conversations()).await
}

#[tauri::command]
pub async fn conversation_create(state: State<'_>) -> Res<ConversationSummary> {
    blocking(&state, |a| a.create_conversation(None)).await
}

#[tauri::command]
pub async fn conversation_rename(state: State<'_>, id: i64, title: String) -> Res<()> {
    blocking(&state, move |a| a.rename_conversation(id, &title)).await
}

#[tauri::command]
pub async fn conversation_delete(state: State<'_>, id: i64) -> Res<()> {
    blocking(&state, move |a| a.delete_conversation(id)).await
}

#[tauri::command]
pub async fn conversation_thread(state: State<'_>, id: i64) -> Res<Vec<ThreadMessage>> {
    blocking(&state, move |a| a.thread(id)).await
}

#[tauri::command]
pub async fn branch_select(state: State<'_>, message_id: i64) -> Res<()> {
    blocking(&state, move |a| a.select_branch(message_id)).await
}

#[tauri::command]
pub async fn messages_search(state: State<'_>, query: String) -> Res<Vec<SearchHit>> {
    blocking(&state, move |a| a.search(&query)).await
}

#[tauri::command]
pub async fn chat_send(
    state: State<'_>,
    request: SendRequest,
    on_event: Channel<ChatEvent>,
) -> Res<StartedJob> {
    blocking(&state, move |a| a.send(request, to_channel(on_event))).await
}

#[tauri::command]
pub async fn chat_regenerate(
    state: State<'_>,
    message_id: i64,
    on_event: Channel<ChatEvent>,
) -> Res<StartedJob> {
    blocking(&state, move |a| {
        a.regenerate(message_id, to_channel(on_event))
    })
    .await
}

#[tauri::command]
pub fn chat_cancel(state: State<'_>, job_id: u64) -> Res<()> {
    state.assistant()?.cancel(job_id);
    Ok(())
}

#[tauri::command]
pub async fn models_list(state: State<'_>) -> Res<Vec<InstalledModel>> {
    blocking(&state, |a| a.models()).await
}

#[tauri::command]
pub async fn model_import(state: State<'_>, path: String) -> Res<InstalledModel> {
    blocking(&state, move |a| a.import_model(&PathBuf::from(path))).await
}

#[tauri::command]
pub async fn model_remove(state: State<'_>, id: String) -> Res<()> {
    blocking(&state, move |a| a.remove_model(&id)).await
}

#[tauri::command]
pub async fn model_set_default(state: State<'_>, id: String) -> Res<()> {
    blocking(&state, move |a| a.set_default_model(&id)).await
}

#[tauri::command]
pub async fn settings_get(state: State<'_>) -> Res<Settings> {
    blocking(&state, |a| a.settings()).await
}

#[tauri::command]
pub async fn settings_update(state: State<'_>, settings: Settings) -> Res<Settings> {
    blocking(&state, move |a| a.update_settings(settings)).await
}

/// One model of the curated catalog, as the Models view lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogItem {
    id: String,
    name: String,
    architecture: String,
    parameters: u64,
    context_length: u32,
    license: String,
    languages: Vec<String>,
    strengths: Vec<String>,
    description: String,
    recommended_quant: String,
    /// The file size at the recommended quantization, estimated from the model's shape.
    estimated_bytes: u64,
}

#[tauri::command]
pub fn catalog_list() -> Res<Vec<CatalogItem>> {
    let catalog = hearth_catalog::Catalog::builtin()
        .map_err(|e| AppError::new("catalog.invalid", e.to_string()))?;
    Ok(catalog
        .entries()
        .iter()
        .map(|e| CatalogItem {
            id: e.id.clone(),
            name: e.name.clone(),
            architecture: e.architecture.clone(),
            parameters: e.parameters,
            context_length: e.context_length,
            license: e.license.clone(),
            languages: e.languages.clone(),
            strengths: e.strengths.clone(),
            description: e.description.clone(),
            recommended_quant: e.recommended_quant.to_string(),
            estimated_bytes: e.estimated_file_bytes(e.recommended_quant),
        })
        .collect())
}

/// A saved system prompt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Preset {
    name: String,
    prompt: String,
}

const PRESETS_KEY: &str = "chat.system_prompt_presets";

#[tauri::command]
pub async fn presets_get(state: State<'_>) -> Res<Vec<Preset>> {
    blocking(&state, |a| {
        let text = a
            .store()
            .setting_text(PRESETS_KEY)
            .map_err(AppError::from)?;
        // A value that no longer parses is treated as no presets rather than an error.
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    })
    .await
}

#[tauri::command]
pub async fn presets_set(state: State<'_>, presets: Vec<Preset>) -> Res<()> {
    if presets.len() > 100 || presets.iter().any(|p| p.name.trim().is_empty()) {
        return Err(AppError::new(
            "settings.invalid",
            "Each preset needs a name (at most 100 presets).",
        ));
    }
    blocking(&state, move |a| {
        let json = serde_json::to_string(&presets)
            .map_err(|e| AppError::new("app.internal", e.to_string()))?;
        a.store()
            .set_setting(PRESETS_KEY, &hearth_store::SettingValue::Text(json))
            .map_err(AppError::from)
    })
    .await
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PickKind {
    /// A .gguf model file.
    Model,
    /// A folder (the data folder).
    Folder,
}

/// Shows the system's file or folder picker; None when the user cancels.
#[tauri::command]
pub async fn file_pick(app: AppHandle, kind: PickKind, title: String) -> Res<Option<String>> {
    let dialog = app.dialog().file().set_title(title);
    let picked = tauri::async_runtime::spawn_blocking(move || match kind {
        PickKind::Model => dialog.add_filter("GGUF", &["gguf"]).blocking_pick_file(),
        PickKind::Folder => dialog.blocking_pick_folder(),
    })
    .await
    .map_err(|e| {
        AppError::new(
            "app.internal",
            format!("The file picker stopped unexpectedly: {e}"),
        )
    })?;
    Ok(picked
        .and_then(|p| p.into_path().ok())
        .map(|p| p.display().to_string()))
}

/// Remembers the data folder for the next start (None: the default one).
#[tauri::command]
pub fn data_folder_set(app: AppHandle, path: Option<String>) -> Res<()> {
    data_folder::remember(&app, path.map(PathBuf::from))
}

/// Opens a web or mail link in the system's browser; other schemes are refused.
#[tauri::command]
pub fn link_open(app: AppHandle, url: String) -> Res<()> {
    let allowed = ["https://", "http://", "mailto:"];
    let scheme_ok = |s: &str| {
        url.len() > s.len()
            && url
                .get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
    };
    if !allowed.into_iter().any(scheme_ok) {
        return Err(AppError::new(
            "link.refused",
            "Only web and mail links can be opened.",
        ));
    }
    app.opener()
        .open_url(url, None::<&str>)
        .map_err(|e| AppError::new("link.failed", format!("The link could not be opened: {e}")))
}
