//! Hearth's desktop shell: the window, its plugins and the commands the web UI calls.
//!
//! The shell holds no logic of its own: each command in [`commands`] is a few lines that call
//! [`hearth_assistant::Assistant`], run off the UI thread, and return either a value or an
//! [`AppError`] (`{code, message}`). Replies stream to the UI through `tauri::ipc::Channel`s.
//!
//! Every command listed in `generate_handler!` below must also be listed in `build.rs` (which
//! generates its `allow-*` permission) and in `capabilities/main.json`; `tests/permissions.test.mjs`
//! fails otherwise.

mod commands;
mod data_folder;
mod document_commands;
mod download_commands;
mod translate_commands;
mod window_memory;

use std::sync::Arc;

use hearth_assistant::{AppError, Assistant, AssistantConfig};
use tauri::Manager;

/// What the commands share: the assistant, or why it could not be opened.
pub struct AppState {
    assistant: Result<Assistant, AppError>,
    /// Said once at startup (a damaged database set aside, ...).
    notice: Option<String>,
}

impl AppState {
    fn assistant(&self) -> Result<Assistant, AppError> {
        self.assistant.clone()
    }
}

pub fn run() {
    let app = tauri::Builder::default()
        // First: a second launch hands over to the running window and exits.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            if let Some(window) = app.get_webview_window("main") {
                let _ = window.unminimize();
                let _ = window.show();
                let _ = window.set_focus();
            }
        }))
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_dialog::init())
        .setup(|app| {
            let config = AssistantConfig {
                data_dir: data_folder::chosen(app.handle()),
                threads: None,
            };
            let state = match Assistant::open(config) {
                Ok(opened) => AppState {
                    assistant: Ok(opened.assistant),
                    notice: opened.notice,
                },
                Err(e) => AppState {
                    assistant: Err(e),
                    notice: None,
                },
            };
            app.manage(Arc::new(state));
            app.manage(download_commands::DownloadsState::default());
            app.manage(window_memory::WindowMemory::start(app.handle().clone()));
            Ok(())
        })
        .on_window_event(|window, event| {
            if matches!(
                event,
                tauri::WindowEvent::Moved(_) | tauri::WindowEvent::Resized(_)
            ) {
                if let Some(memory) = window.try_state::<window_memory::WindowMemory>() {
                    memory.changed();
                }
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::conversations_list,
            commands::conversation_create,
            commands::conversation_rename,
            commands::conversation_delete,
            commands::conversation_thread,
            commands::branch_select,
            commands::messages_search,
            commands::chat_send,
            commands::chat_regenerate,
            commands::chat_cancel,
            commands::models_list,
            commands::model_import,
            commands::model_remove,
            commands::model_set_default,
            commands::settings_get,
            commands::settings_update,
            commands::presets_get,
            commands::presets_set,
            commands::catalog_list,
            commands::file_pick,
            commands::data_folder_set,
            commands::link_open,
            download_commands::catalog_for_machine,
            download_commands::model_recommendation,
            download_commands::model_pull,
            download_commands::search_model_pull,
            download_commands::model_pull_pause,
            download_commands::model_pull_cancel,
            translate_commands::translate_languages,
            translate_commands::translate_detect,
            translate_commands::translate_model,
            translate_commands::translate,
            translate_commands::translate_cancel,
            translate_commands::translation_list,
            translate_commands::translation_search,
            translate_commands::translation_get,
            translate_commands::translation_delete,
            translate_commands::translation_export,
            translate_commands::glossary_list,
            translate_commands::glossary_set,
            translate_commands::glossary_delete,
            translate_commands::translate_document_pick,
            translate_commands::translate_document_read,
            document_commands::documents_pick,
            document_commands::document_add,
            document_commands::documents_list,
            document_commands::document_delete,
            document_commands::document_summarize,
            document_commands::summary_resume,
            document_commands::document_cancel,
            document_commands::summaries_interrupted,
            document_commands::document_summaries,
            document_commands::passage_get,
            document_commands::document_ask,
            document_commands::retrieval_status,
        ])
        .build(tauri::generate_context!());
    match app {
        Ok(app) => app.run(|_, _| {}),
        Err(e) => {
            eprintln!("Hearth could not start its window: {e}");
            std::process::exit(1);
        }
    }
}
