//! Generates an `allow-<command>` permission for each command the app defines; a command missing
//! here cannot be called from the UI at all (Tauri refuses it).

const COMMANDS: &[&str] = &[
    "app_info",
    "conversations_list",
    "conversation_create",
    "conversation_rename",
    "conversation_delete",
    "conversation_thread",
    "branch_select",
    "messages_search",
    "chat_send",
    "chat_regenerate",
    "chat_cancel",
    "models_list",
    "model_import",
    "model_remove",
    "model_set_default",
    "settings_get",
    "settings_update",
    "presets_get",
    "presets_set",
    "catalog_list",
    "file_pick",
    "data_folder_set",
    "link_open",
    "catalog_for_machine",
    "model_recommendation",
    "model_pull",
    "model_pull_pause",
    "model_pull_cancel",
    "translate_languages",
    "translate_detect",
    "translate_model",
    "translate",
    "translate_cancel",
    "translation_list",
    "translation_search",
    "translation_get",
    "translation_delete",
    "translation_export",
    "glossary_list",
    "glossary_set",
    "glossary_delete",
    "translate_document_pick",
    "translate_document_read",
];

fn main() {
    let manifest = tauri_build::AppManifest::new().commands(COMMANDS);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
        .expect("tauri-build failed (see the message above)");
}
