//! `hearth models | pull | quantize | import | rm`: the model catalog with hardware fit and
//! installed state, downloads from Hugging Face (or a mirror), on-device quantization, importing
//! files from disk and removing models. A thin layer over `hearth-catalog`; installed models are
//! recorded in Hearth's database (`hearth-store`).
//!
//! Hub settings, first found wins: the command-line flag, the environment (`HF_ENDPOINT`,
//! `HF_TOKEN`, `HF_HUB_OFFLINE`, `HF_HUB_CACHE`/`HF_HOME`), the database settings
//! `models.hub_endpoint` / `models.hub_token`, the public hub.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use hearth_catalog::hardware::{predict_decode, Fit, Hardware, ModelCost};
use hearth_catalog::installed::{import_folder, import_gguf, remove, ImportMode, InstalledModels};
use hearth_catalog::pull::{installed_id, pull, PullEvent};
use hearth_catalog::{Catalog, DownloadProgress, Hub, HubConfig, Quant};

#[derive(Args, Clone, Debug)]
pub struct HubArgs {
    /// Hearth's data folder (database, models, hardware cache); default: HEARTH_DATA_DIR or the
    /// per-user data folder.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Hugging Face endpoint or mirror (default: HF_ENDPOINT, the `models.hub_endpoint` setting,
    /// or the public hub).
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// Access token for gated repositories (default: HF_TOKEN, the token file, or the
    /// `models.hub_token` setting).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Never touch the network: use only what the Hugging Face cache already has.
    #[arg(long, global = true)]
    pub offline: bool,
}

#[derive(Subcommand, Clone, Debug)]
pub enum ModelsCommand {
    /// List the catalog: size, licence, languages, how each quantization fits this computer,
    /// predicted speed, and what is installed (with its measured speed).
    Models {
        #[command(flatten)]
        hub: HubArgs,
        /// Context length to judge memory fit at.
        #[arg(long, default_value_t = 4096)]
        context: u64,
        /// Show every quantization, not only the recommended one.
        #[arg(long)]
        all: bool,
        /// Run each installed model briefly to measure (and record) its decode speed.
        #[arg(long)]
        measure: bool,
    },
    /// Download a catalog model (or its weights, quantized here) and install it.
    Pull {
        #[command(flatten)]
        hub: HubArgs,
        /// Catalog id (see `hearth models`).
        id: String,
        /// Quantization: Q4_K_M, Q5_K_M, Q6_K, Q8_0 (default: the catalog's recommendation).
        #[arg(long, short = 'q')]
        quant: Option<Quant>,
    },
    /// Quantize a Hugging Face safetensors folder into a GGUF file.
    Quantize {
        /// Folder with config.json, tokenizer.json and *.safetensors.
        dir: PathBuf,
        #[arg(long, short = 'q')]
        quant: Quant,
        /// Output GGUF file.
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
    /// Install a GGUF file or a Hugging Face folder from anywhere on disk.
    Import {
        #[command(flatten)]
        hub: HubArgs,
        path: PathBuf,
        /// Link to the file instead of copying it (the original must stay where it is).
        #[arg(long)]
        link: bool,
        /// Id to install it under (default: from the file or folder name).
        #[arg(long)]
        id: Option<String>,
        /// Quantization for a folder (default Q4_K_M).
        #[arg(long, short = 'q')]
        quant: Option<Quant>,
    },
    /// Remove an installed model (files Hearth owns are deleted; linked originals are kept).
    Rm {
        #[command(flatten)]
        hub: HubArgs,
        id: String,
    },
}

struct Env {
    store: hearth_store::Store,
    data_dir: PathBuf,
    hub: Hub,
}

impl Env {
    fn models_dir(&self) -> PathBuf {
        self.data_dir.join("models")
    }

    fn open(args: &HubArgs) -> Result<Self> {
        let data_dir = hearth_store::location::data_dir(args.data_dir.as_deref())
            .context("finding the data folder")?;
        let opened = hearth_store::Store::open_in_data_dir(Some(&data_dir), &Default::default())
            .context("opening the database")?;
        if let Some(r) = &opened.recovery {
            eprintln!("note: {}", r.message());
        }
        let store = opened.store;
        let mut cfg = HubConfig::from_env();
        if std::env::var_os("HF_ENDPOINT").is_none() {
            if let Ok(Some(e)) = store.setting_text("models.hub_endpoint") {
                cfg.endpoint = e.trim_end_matches('/').to_string();
            }
        }
        if cfg.token.is_none() {
            cfg.token = store.setting_text("models.hub_token").ok().flatten();
        }
        if let Some(e) = &args.endpoint {
            cfg.endpoint = e.trim_end_matches('/').to_string();
        }
        if let Some(t) = &args.token {
            cfg.token = Some(t.clone());
        }
        cfg.offline |= args.offline;
        Ok(Self {
            store,
            data_dir,
            hub: Hub::new(cfg),
        })
    }
}

fn gib(b: u64) -> String {
    format!("{:.1} GB", b as f64 / 1e9)
}

fn mb(b: u64) -> String {
    if b >= 1_000_000_000 {
        gib(b)
    } else {
        format!("{:.0} MB", b as f64 / 1e6)
    }
}

/// One progress line on stderr, rewritten in place.
struct ProgressLine {
    last: Instant,
}

impl ProgressLine {
    fn new() -> Self {
        Self {
            last: Instant::now() - Duration::from_secs(1),
        }
    }

    fn download(&mut self, p: &DownloadProgress) {
        if !p.done && self.last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last = Instant::now();
        let total = p.total.map(mb).unwrap_or_else(|| "?".into());
        let eta = p
            .eta
            .map(|e| format!(" ETA {}s", e.as_secs()))
            .unwrap_or_default();
        let retry = if p.retrying > 0 {
            format!(" (retry {})", p.retrying)
        } else {
            String::new()
        };
        eprint!(
            "\r\x1b[K{}  {} / {}  {:.1} MB/s{eta}{retry}",
            p.file,
            mb(p.downloaded),
            total,
            p.bytes_per_second / 1e6
        );
        if p.done {
            eprintln!();
        }
    }

    fn quantize(&mut self, p: &hearth_catalog::convert::ConvertProgress) {
        let done = p.tensors_done == p.tensors_total;
        if !done && self.last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last = Instant::now();
        eprint!(
            "\r\x1b[Kquantizing {}/{} tensors, {} / {}",
            p.tensors_done,
            p.tensors_total,
            mb(p.bytes_written),
            mb(p.bytes_total)
        );
        if done {
            eprintln!();
        }
    }
}

/// Generates a few tokens and returns the decode speed.
fn measure_speed(path: &Path) -> Result<f64> {
    use hearth_engine::{GenerationParams, LoadedModel, Prompt, SamplingParams};
    let mut m = LoadedModel::load(path, hearth_engine::default_threads())
        .with_context(|| format!("loading {}", path.display()))?;
    let params = GenerationParams {
        max_tokens: 32,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..Default::default()
    };
    let s = m.generate(
        &Prompt::Raw("The history of the city began".into()),
        &params,
        &AtomicBool::new(false),
        &mut |_| true,
    )?;
    Ok(s.decode_tok_s)
}

/// `text` cut to `width` characters, with an ellipsis when something was cut.
fn short(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}

fn list(env: &Env, context: u64, all: bool, measure: bool) -> Result<()> {
    let catalog = Catalog::builtin()?;
    let hw = Hardware::detect_measured(&env.data_dir.join("hardware.json"));
    let bw = hw.bandwidth.clone();
    println!(
        "This computer: {}, {} cores ({} logical), {}; memory {} total, {} available; bandwidth {}",
        hw.cpu,
        hw.physical_cores
            .map(|c| c.to_string())
            .unwrap_or_else(|| "?".into()),
        hw.logical_cores,
        hw.features.names().join(" "),
        gib(hw.total_memory),
        gib(hw.available_memory),
        bw.as_ref()
            .map(|b| format!("{:.1} GB/s", b.bytes_per_second / 1e9))
            .unwrap_or_else(|| "?".into()),
    );
    let installed = env.store.list()?;
    if measure {
        for m in &installed {
            match measure_speed(Path::new(&m.path)) {
                Ok(s) => env.store.record_speed(&m.id, s)?,
                Err(e) => eprintln!("{}: {e:#}", m.id),
            }
        }
    }
    println!("\nCatalog (fit at a {context}-token context):");
    println!(
        "{:<24} {:>6} {:<8} {:<10} {:>9} {:<13} {:>10}  {}",
        "ID", "PARAMS", "QUANT", "FIT", "MEMORY", "LICENSE", "PREDICTED", "INSTALLED"
    );
    for e in catalog.entries() {
        let quants: Vec<Quant> = if all {
            e.available_quants()
        } else {
            vec![e.recommended_quant]
        };
        for (i, q) in quants.into_iter().enumerate() {
            let a = hw.assess(&ModelCost::estimate(e, q), q, context);
            let inst = installed.iter().find(|m| m.id == installed_id(e, q));
            let inst_text = match inst {
                Some(m) => match env.store.measured_speed(&m.id)? {
                    Some(s) => format!("yes, measured {s:.1} tok/s"),
                    None => "yes".into(),
                },
                None => String::new(),
            };
            println!(
                "{:<24} {:>6} {:<8} {:<10} {:>9} {:<13} {:>10}  {}",
                if i == 0 { e.id.as_str() } else { "" },
                if i == 0 {
                    format!("{:.1}B", e.parameters as f64 / 1e9)
                } else {
                    String::new()
                },
                q.name(),
                a.fit.to_string(),
                mb(a.memory_needed),
                if i == 0 {
                    short(&e.license, 13)
                } else {
                    String::new()
                },
                a.predicted_tokens_per_second
                    .map(|t| format!("{t:.1} tok/s"))
                    .unwrap_or_default(),
                inst_text
            );
        }
    }
    let others: Vec<_> = installed
        .iter()
        .filter(|m| {
            !catalog.entries().iter().any(|e| {
                e.available_quants()
                    .iter()
                    .any(|q| installed_id(e, *q) == m.id)
            })
        })
        .collect();
    if !others.is_empty() {
        println!("\nOther installed models:");
        for m in others {
            let predicted = match (&bw, ModelCost::of_gguf(Path::new(&m.path))) {
                (Some(b), Ok(c)) => {
                    let fit = hw.fit(c.memory_at(context));
                    format!("{fit}, predicted {:.1} tok/s", predict_decode(b, &c, 256))
                }
                (_, Err(e)) => format!("unreadable: {e}"),
                _ => String::new(),
            };
            let measured = env
                .store
                .measured_speed(&m.id)?
                .map(|s| format!(", measured {s:.1} tok/s"))
                .unwrap_or_default();
            println!(
                "{:<32} {:<7} {:>9}  {predicted}{measured}  {}",
                m.id,
                m.quant.clone().unwrap_or_default(),
                mb(m.size_bytes),
                m.path
            );
        }
    }
    let fits = Fit::Fits;
    println!("\n({fits}: fits in available memory with 1 GB to spare; tight: only if other programs free memory; won't fit: too big)");
    Ok(())
}

/// Set by Ctrl-C: downloads stop (keeping the partial file to resume) and quantization removes
/// its partial output.
static CANCEL: AtomicBool = AtomicBool::new(false);

pub fn run(cmd: ModelsCommand) -> Result<()> {
    // Another part of the program may own the handler already; then Ctrl-C keeps its default.
    let _ = ctrlc::set_handler(|| CANCEL.store(true, std::sync::atomic::Ordering::SeqCst));
    let cancel = &CANCEL;
    match cmd {
        ModelsCommand::Models {
            hub,
            context,
            all,
            measure,
        } => list(&Env::open(&hub)?, context, all, measure),
        ModelsCommand::Pull { hub, id, quant } => {
            let env = Env::open(&hub)?;
            let catalog = Catalog::builtin()?;
            let entry = catalog.require(&id)?;
            let quant = quant.unwrap_or(entry.recommended_quant);
            if !entry.available_quants().contains(&quant) {
                bail!(
                    "{id} is not offered at {quant}; available: {:?}",
                    entry.available_quants()
                );
            }
            let mut line = ProgressLine::new();
            let m = pull(
                entry,
                quant,
                &env.hub,
                &env.models_dir(),
                &env.store,
                &mut |e| match e {
                    PullEvent::Download(p) => line.download(p),
                    PullEvent::Quantize(p) => line.quantize(p),
                },
                cancel,
            )
            .inspect_err(|_| eprintln!())
            .with_context(|| format!("pulling {id} at {quant}"))?;
            println!("installed {} ({}) at {}", m.id, mb(m.size_bytes), m.path);
            Ok(())
        }
        ModelsCommand::Quantize { dir, quant, output } => {
            let mut line = ProgressLine::new();
            let r = hearth_catalog::convert::quantize_folder(
                &dir,
                &output,
                quant,
                &mut |p| line.quantize(p),
                cancel,
            )
            .inspect_err(|_| eprintln!())
            .with_context(|| format!("quantizing {}", dir.display()))?;
            let types: Vec<String> = r.types.iter().map(|(t, n)| format!("{n} {t}")).collect();
            println!(
                "wrote {} ({}, {}) in {:.1} s: {} tensors ({}), {} shape fallbacks",
                r.output.display(),
                r.architecture,
                mb(r.output_bytes),
                r.seconds,
                r.tensors,
                types.join(", "),
                r.fallbacks.len()
            );
            Ok(())
        }
        ModelsCommand::Import {
            hub,
            path,
            link,
            id,
            quant,
        } => {
            let env = Env::open(&hub)?;
            let m = if path.is_dir() {
                let mut line = ProgressLine::new();
                import_folder(
                    &path,
                    &env.models_dir(),
                    quant.unwrap_or(Quant::Q4KM),
                    id.as_deref(),
                    &env.store,
                    &mut |p| line.quantize(p),
                    cancel,
                )?
            } else {
                let mode = if link {
                    ImportMode::Link
                } else {
                    ImportMode::Copy
                };
                import_gguf(&path, &env.models_dir(), mode, id.as_deref(), &env.store)?
            };
            println!("installed {} ({}) at {}", m.id, mb(m.size_bytes), m.path);
            Ok(())
        }
        ModelsCommand::Rm { hub, id } => {
            let env = Env::open(&hub)?;
            let m = remove(&id, &env.store, &env.models_dir(), env.hub.layout())?;
            println!("removed {} ({})", m.id, m.path);
            Ok(())
        }
    }
}
