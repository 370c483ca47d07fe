//! The translation view's commands (see `ui/src/backend/ipc.ts`, their only caller). Each is a
//! few lines over `Assistant`'s translation API (`hearth_assistant::translate`): start a
//! translation and stream its events through a `Channel`, cancel it, detect a language, the
//! history (list, search, get, delete, export to a file the user picks), the glossary of a
//! language pair, and reading a document into the source box.
//!
//! A caller may rely on: errors cross as `{code, message}` like every other command; the picker
//! commands return None when the user cancels; `translate_document_read` gives Markdown and
//! plain-text files back unchanged (so their structure is translated as it is) and the text of
//! other documents (PDF, DOCX, ODT, EPUB, HTML) as plain text.

use std::path::Path;
use std::sync::Arc;

use hearth_assistant::translate::{
    Detection, ExportFormat, GlossaryItem, LanguageInfo, ModelChoice, TextFormat,
    TranslationRecord, TranslationSummary, MAX_DOCUMENT_BYTES,
};
use hearth_assistant::{AppError, Assistant, TranslateEvent, TranslateRequest, TranslationStarted};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::AppHandle;
use tauri_plugin_dialog::DialogExt;

use crate::AppState;

type Res<T> = Result<T, AppError>;
type State<'a> = tauri::State<'a, Arc<AppState>>;

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

#[tauri::command]
pub async fn translate_languages(state: State<'_>) -> Res<Vec<LanguageInfo>> {
    blocking(&state, |a| Ok(a.translation_languages())).await
}

/// The language of `text`; None when it has no letters to tell by.
#[tauri::command]
pub async fn translate_detect(state: State<'_>, text: String) -> Res<Option<Detection>> {
    blocking(&state, move |a| Ok(a.detect_language(&text))).await
}

/// The model a translation between the two languages would use, and why.
#[tauri::command]
pub async fn translate_model(state: State<'_>, source: String, target: String) -> Res<ModelChoice> {
    blocking(&state, move |a| a.translation_model(&source, &target)).await
}

#[tauri::command]
pub async fn translate(
    state: State<'_>,
    request: TranslateRequest,
    on_event: Channel<TranslateEvent>,
) -> Res<TranslationStarted> {
    blocking(&state, move |a| {
        // A send fails only when the window is gone; the translation is still stored.
        a.translate(request, crate::commands::to_channel(on_event))
    })
    .await
}

#[tauri::command]
pub fn translate_cancel(state: State<'_>, job_id: u64) -> Res<()> {
    state.assistant()?.cancel(job_id);
    Ok(())
}

#[tauri::command]
pub async fn translation_list(
    state: State<'_>,
    limit: u32,
    before: Option<i64>,
) -> Res<Vec<TranslationSummary>> {
    blocking(&state, move |a| a.translations(limit.min(500), before)).await
}

#[tauri::command]
pub async fn translation_search(state: State<'_>, query: String) -> Res<Vec<TranslationSummary>> {
    blocking(&state, move |a| a.search_translations(&query)).await
}

#[tauri::command]
pub async fn translation_get(state: State<'_>, id: i64) -> Res<TranslationRecord> {
    blocking(&state, move |a| a.translation(id)).await
}

#[tauri::command]
pub async fn translation_delete(state: State<'_>, id: i64) -> Res<()> {
    blocking(&state, move |a| a.delete_translation(id)).await
}

/// Asks where to save a stored translation, then writes it there as Markdown or text. Returns
/// the path written, or None when the user cancelled.
#[tauri::command]
pub async fn translation_export(
    app: AppHandle,
    state: State<'_>,
    id: i64,
    format: ExportFormat,
    title: String,
) -> Res<Option<String>> {
    let (name, ext) = match format {
        ExportFormat::Markdown => ("Markdown", "md"),
        _ => ("Text", "txt"),
    };
    let dialog = app
        .dialog()
        .file()
        .set_title(title)
        .add_filter(name, &[ext])
        .set_file_name(format!("translation-{id}.{ext}"));
    let picked = off_ui(move || Ok(dialog.blocking_save_file())).await?;
    let Some(path) = picked.and_then(|p| p.into_path().ok()) else {
        return Ok(None);
    };
    blocking(&state, move |a| {
        a.export_translation_to(id, format, &path)?;
        Ok(Some(path.display().to_string()))
    })
    .await
}

#[tauri::command]
pub async fn glossary_list(
    state: State<'_>,
    source: String,
    target: String,
) -> Res<Vec<GlossaryItem>> {
    blocking(&state, move |a| a.glossary(&source, &target)).await
}

/// Adds a term to the pair's glossary, or changes the translation of one already there.
#[tauri::command]
pub async fn glossary_set(
    state: State<'_>,
    source: String,
    target: String,
    term: String,
    translation: String,
    note: Option<String>,
) -> Res<GlossaryItem> {
    blocking(&state, move |a| {
        a.set_glossary_term(&source, &target, &term, &translation, note)
    })
    .await
}

#[tauri::command]
pub async fn glossary_delete(state: State<'_>, id: i64) -> Res<()> {
    blocking(&state, move |a| a.delete_glossary_term(id)).await
}

/// Shows the system's file picker for a document to translate; None when the user cancels.
#[tauri::command]
pub async fn translate_document_pick(app: AppHandle, title: String) -> Res<Option<String>> {
    let dialog = app.dialog().file().set_title(title).add_filter(
        "Documents",
        &[
            "txt", "md", "markdown", "docx", "odt", "pdf", "epub", "html", "htm",
        ],
    );
    let picked = off_ui(move || Ok(dialog.blocking_pick_file())).await?;
    Ok(picked
        .and_then(|p| p.into_path().ok())
        .map(|p| p.display().to_string()))
}

/// A document's text, ready for the source box.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentText {
    /// The file's name (without its folder).
    pub name: String,
    pub text: String,
    pub format: TextFormat,
}

#[tauri::command]
pub async fn translate_document_read(state: State<'_>, path: String) -> Res<DocumentText> {
    blocking(&state, move |a| {
        let limits = a.settings()?.documents.to_limits();
        read_document_text(Path::new(&path), &limits)
    })
    .await
}

/// Markdown and text files as they are; other documents through `hearth_documents`, within
/// the user's document limits.
fn read_document_text(path: &Path, limits: &hearth_documents::Limits) -> Res<DocumentText> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let unreadable = |e: std::io::Error| {
        AppError::new(
            "translate.document_unreadable",
            format!("Cannot read {}: {e}", path.display()),
        )
    };
    if matches!(
        ext.as_str(),
        "md" | "markdown" | "mdown" | "mkd" | "txt" | "text"
    ) {
        let size = std::fs::metadata(path).map_err(unreadable)?.len();
        if size > MAX_DOCUMENT_BYTES {
            return Err(AppError::new(
                "translate.document_too_large",
                format!(
                    "{} is {} MB; documents up to {} MB can be translated.",
                    path.display(),
                    size >> 20,
                    MAX_DOCUMENT_BYTES >> 20
                ),
            ));
        }
        let bytes = std::fs::read(path).map_err(unreadable)?;
        let text = String::from_utf8_lossy(&bytes)
            .trim_start_matches('\u{feff}')
            .to_string();
        let format = if ext.starts_with('t') {
            TextFormat::Plain
        } else {
            TextFormat::Markdown
        };
        return Ok(DocumentText { name, text, format });
    }
    let extracted = hearth_documents::extract_file(path, limits).map_err(|e| {
        AppError::new(
            &format!("documents.{}", e.code()),
            format!("{}: {e}", path.display()),
        )
    })?;
    Ok(DocumentText {
        name,
        text: extracted.text(),
        format: TextFormat::Plain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_read_unchanged_and_text_as_plain() {
        let dir = std::env::temp_dir().join(format!("hearth-translate-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let md = dir.join("notes.md");
        std::fs::write(&md, "\u{feff}# Title\n\n```\ncode\n```\n").unwrap();
        let d = read_document_text(&md, &hearth_documents::Limits::default()).unwrap();
        assert_eq!(d.name, "notes.md");
        assert_eq!(d.text, "# Title\n\n```\ncode\n```\n");
        assert_eq!(d.format, TextFormat::Markdown);
        let txt = dir.join("a.txt");
        std::fs::write(&txt, "Hello.").unwrap();
        assert_eq!(
            read_document_text(&txt, &hearth_documents::Limits::default())
                .unwrap()
                .format,
            TextFormat::Plain
        );
        let missing =
            read_document_text(&dir.join("none.md"), &hearth_documents::Limits::default())
                .unwrap_err();
        assert_eq!(missing.code, "translate.document_unreadable");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn other_documents_go_through_extraction() {
        let dir =
            std::env::temp_dir().join(format!("hearth-translate-html-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let html = dir.join("page.html");
        std::fs::write(
            &html,
            "<html><head><title>T</title></head><body><p>First paragraph.</p><p>Second one.</p></body></html>",
        )
        .unwrap();
        let d = read_document_text(&html, &hearth_documents::Limits::default()).unwrap();
        assert!(d.text.contains("First paragraph."), "{}", d.text);
        assert!(d.text.contains("Second one."), "{}", d.text);
        assert_eq!(d.format, TextFormat::Plain);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
