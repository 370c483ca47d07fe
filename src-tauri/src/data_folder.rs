//! Which data folder the app opens. In order: `$HEARTH_DATA_DIR` when it is set (tests, portable
//! setups), else the folder chosen in Settings, else the system's per-user data folder (the
//! store's default). The choice is remembered in `data-folder.txt` in the app's config folder,
//! because the database itself lives in the data folder; it takes effect at the next start.

use std::path::PathBuf;

use hearth_assistant::AppError;
use tauri::{AppHandle, Manager, Runtime};

const POINTER_FILE: &str = "data-folder.txt";

/// True when `$HEARTH_DATA_DIR` decides the data folder (the Settings choice is then ignored).
pub fn from_env() -> bool {
    std::env::var_os("HEARTH_DATA_DIR").is_some_and(|v| !v.is_empty())
}

/// The folder chosen in Settings, if any (whether or not it is in use yet).
pub fn remembered<R: Runtime>(app: &AppHandle<R>) -> Option<PathBuf> {
    let file = app.path().app_config_dir().ok()?.join(POINTER_FILE);
    let text = std::fs::read_to_string(file).ok()?;
    let path = text.trim();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// The folder to pass to the assistant at startup; None lets the store decide.
pub fn chosen<R: Runtime>(app: &AppHandle<R>) -> Option<PathBuf> {
    if from_env() {
        return None;
    }
    remembered(app)
}

/// Remembers `folder` (None: back to the default) for the next start.
pub fn remember<R: Runtime>(app: &AppHandle<R>, folder: Option<PathBuf>) -> Result<(), AppError> {
    let dir = app.path().app_config_dir().map_err(|e| {
        AppError::new(
            "app.config_dir",
            format!("The app's settings folder is unknown: {e}"),
        )
    })?;
    let file = dir.join(POINTER_FILE);
    match folder {
        None => match std::fs::remove_file(&file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&file, e)),
        },
        Some(folder) => {
            if !folder.is_absolute() {
                return Err(AppError::new(
                    "settings.invalid",
                    "Choose a full path for the data folder.",
                ));
            }
            std::fs::create_dir_all(&folder).map_err(|e| io_error(&folder, e))?;
            std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
            std::fs::write(&file, folder.display().to_string()).map_err(|e| io_error(&file, e))
        }
    }
}

fn io_error(path: &std::path::Path, e: std::io::Error) -> AppError {
    AppError::new("app.io", format!("{}: {e}", path.display()))
}
