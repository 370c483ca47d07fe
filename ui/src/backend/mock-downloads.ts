/**
 * The download part of the mock backend: a catalog judged for an imaginary computer, a
 * recommendation, and downloads that stream progress on a timer, with pause (the bytes are kept
 * and the next pull resumes from them), cancel (the bytes are dropped), failures on request, and
 * a measured speed once a model is installed. Same events, in the same order, as the app's.
 */
import type { AppError, InstalledModel } from './types';
import type {
  CatalogModel,
  DownloadBackend,
  DownloadEvent,
  MachineCatalog,
  QuantChoice,
  Recommendation,
} from './download-types';

export interface MockDownloadOptions {
  /** Bytes per progress event (default: a tenth of the file). */
  chunkBytes?: number;
  /** Milliseconds between progress events (default 5). */
  delayMs?: number;
  /** The next pull fails with this error once this many bytes are down (default: at once). */
  failWith?: AppError;
  failAfterBytes?: number;
  /** Measured speed reported after a download (default 91.5). */
  measuredTokensPerSecond?: number;
}

export interface MockDownloadHooks {
  /** Records an installed model; returns it as the models list will show it. */
  install(model: InstalledModel): InstalledModel;
  hasDefault(): boolean;
}

export interface MockDownloadExtras {
  /** Makes the next pulls fail (null: succeed again). */
  failDownloads(error: AppError | null, afterBytes?: number): void;
}

function quant(over: Partial<QuantChoice> & Pick<QuantChoice, 'quant' | 'installedId'>): QuantChoice {
  return {
    recommended: false,
    fit: 'fits',
    memoryNeeded: 600_000_000,
    fileBytes: 300_000_000,
    predictedTokensPerSecond: 30,
    comesFrom: 'download',
    installed: false,
    isDefault: false,
    measuredTokensPerSecond: null,
    ...over,
  };
}

export function sampleMachineCatalog(): MachineCatalog {
  const model = (m: Omit<CatalogModel, 'licenseUrl' | 'gated' | 'strengths'> & Partial<CatalogModel>): CatalogModel => ({
    licenseUrl: null,
    gated: false,
    strengths: [],
    ...m,
  });
  return {
    machine: {
      cpu: 'Test CPU',
      logicalCores: 8,
      physicalCores: 4,
      totalMemory: 16_000_000_000,
      availableMemory: 9_000_000_000,
      bandwidthBytesPerSecond: 20e9,
    },
    context: 4096,
    models: [
      model({
        id: 'qwen2.5-0.5b-instruct',
        name: 'Qwen2.5 0.5B Instruct',
        description: 'A small multilingual model.',
        architecture: 'qwen2',
        parameters: 494_032_768,
        contextLength: 32768,
        license: 'Apache-2.0',
        languages: ['en', 'zh', 'fr'],
        recommendedQuant: 'Q4_K_M',
        canQuantizeHere: true,
        quants: [
          quant({ quant: 'Q4_K_M', installedId: 'qwen2.5-0.5b-instruct-q4_k_m', recommended: true, fileBytes: 300_000_000, predictedTokensPerSecond: 42.4 }),
          quant({ quant: 'Q8_0', installedId: 'qwen2.5-0.5b-instruct-q8_0', fileBytes: 525_000_000, predictedTokensPerSecond: 25.2, comesFrom: 'quantize' }),
        ],
      }),
      model({
        id: 'smollm2-135m-instruct',
        name: 'SmolLM2 135M Instruct',
        description: "Hugging Face's smallest instruction-tuned model.",
        architecture: 'llama',
        parameters: 134_515_008,
        contextLength: 8192,
        license: 'Apache-2.0',
        languages: ['en'],
        recommendedQuant: 'Q8_0',
        canQuantizeHere: false,
        quants: [
          quant({ quant: 'Q8_0', installedId: 'smollm2-135m-instruct-q8_0', recommended: true, fileBytes: 143_000_000, predictedTokensPerSecond: 96.3, memoryNeeded: 400_000_000 }),
        ],
      }),
      model({
        id: 'qwen3-4b',
        name: 'Qwen3 4B',
        description: 'A larger model for harder questions.',
        architecture: 'qwen3',
        parameters: 4_022_468_096,
        contextLength: 32768,
        license: 'Apache-2.0',
        languages: ['en', 'zh'],
        recommendedQuant: 'Q4_K_M',
        canQuantizeHere: true,
        quants: [
          quant({ quant: 'Q4_K_M', installedId: 'qwen3-4b-q4_k_m', recommended: true, fileBytes: 2_500_000_000, memoryNeeded: 12_000_000_000, fit: 'wont_fit', predictedTokensPerSecond: 4.1 }),
          quant({ quant: 'Q6_K', installedId: 'qwen3-4b-q6_k', fileBytes: 3_300_000_000, memoryNeeded: 14_000_000_000, fit: 'tight', predictedTokensPerSecond: 3.2 }),
        ],
      }),
    ],
  };
}

interface Job {
  catalogId: string;
  quant: QuantChoice;
  onEvent: (e: DownloadEvent) => void;
  stop: 'none' | 'pause' | 'cancel';
}

export function createMockDownloads(
  options: MockDownloadOptions & { catalog?: MachineCatalog; recommendation?: Recommendation },
  hooks: MockDownloadHooks,
  record: (name: string, args: unknown[]) => void,
): DownloadBackend & MockDownloadExtras {
  const catalog: MachineCatalog = structuredClone(options.catalog ?? sampleMachineCatalog());
  const delay = options.delayMs ?? 5;
  let failure: { error: AppError; after: number } | null = options.failWith
    ? { error: options.failWith, after: options.failAfterBytes ?? 0 }
    : null;
  /** Bytes kept by paused downloads, by installed id. */
  const partial = new Map<string, number>();
  const jobs = new Map<number, Job>();
  let nextJob = 1;
  const later = <T>(value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), 0));
  const fail = (code: string, message: string): AppError => ({ code, message });

  function find(catalogId: string, q: string | null): [CatalogModel, QuantChoice] {
    const m = catalog.models.find((x) => x.id === catalogId);
    if (!m) throw fail('download.unknown_model', `The catalog has no model called ${catalogId}.`);
    const choice = q ? m.quants.find((x) => x.quant === q) : m.quants[0];
    if (!choice) throw fail('download.unknown_quant', `${catalogId} is not offered at ${q}.`);
    return [m, choice];
  }

  function run(jobId: number, model: CatalogModel) {
    const job = jobs.get(jobId);
    if (!job) return;
    const total = job.quant.fileBytes;
    const step = options.chunkBytes ?? Math.ceil(total / 10);
    const resumedFrom = partial.get(job.quant.installedId) ?? 0;
    let downloaded = resumedFrom;
    const tick = () => {
      if (job.stop === 'pause') {
        partial.set(job.quant.installedId, downloaded);
        jobs.delete(jobId);
        job.onEvent({ type: 'paused', jobId, downloaded, total });
        return;
      }
      if (job.stop === 'cancel') {
        partial.delete(job.quant.installedId);
        jobs.delete(jobId);
        job.onEvent({ type: 'cancelled', jobId });
        return;
      }
      if (failure && downloaded >= failure.after) {
        const error = failure.error;
        partial.set(job.quant.installedId, downloaded);
        jobs.delete(jobId);
        job.onEvent({ type: 'failed', jobId, error });
        return;
      }
      if (downloaded >= total) {
        partial.delete(job.quant.installedId);
        jobs.delete(jobId);
        const madeDefault = !hooks.hasDefault();
        const installed = hooks.install({
          id: job.quant.installedId,
          name: model.name,
          path: `/home/user/.cache/huggingface/hub/${job.quant.installedId}.gguf`,
          arch: model.architecture,
          quant: job.quant.quant,
          sizeBytes: total,
          contextLength: model.contextLength,
          isDefault: madeDefault,
          available: true,
        });
        job.quant.installed = true;
        job.quant.isDefault = installed.isDefault;
        job.onEvent({ type: 'done', jobId, model: installed, madeDefault });
        setTimeout(() => {
          const speed = options.measuredTokensPerSecond ?? 91.5;
          job.quant.measuredTokensPerSecond = speed;
          job.onEvent({ type: 'measured', jobId, installedId: installed.id, tokensPerSecond: speed });
        }, delay);
        return;
      }
      downloaded = Math.min(total, downloaded + step);
      const bytesPerSecond = 12_500_000;
      job.onEvent({
        type: 'progress',
        jobId,
        file: `${model.name}-${job.quant.quant}.gguf`,
        downloaded,
        total,
        resumedFrom,
        bytesPerSecond,
        etaSeconds: (total - downloaded) / bytesPerSecond,
        retrying: 0,
      });
      setTimeout(tick, delay);
    };
    setTimeout(tick, delay);
  }

  return {
    failDownloads(error, afterBytes = 0) {
      failure = error ? { error, after: afterBytes } : null;
    },
    async catalogForMachine(context) {
      record('catalogForMachine', [context ?? null]);
      return later(structuredClone(catalog));
    },
    async modelRecommendation() {
      record('modelRecommendation', []);
      if (options.recommendation) return later(structuredClone(options.recommendation));
      const m = catalog.models.find((x) => x.id === 'qwen2.5-0.5b-instruct') ?? catalog.models[0];
      return later({
        model: structuredClone(m),
        quant: m.quants[0].quant,
        reason: 'comfortable' as const,
        explanation: `${m.name} fits in this computer's memory with room to spare.`,
      });
    },
    async pullModel(request, onEvent) {
      record('pullModel', [request]);
      const [model, choice] = find(request.catalogId, request.quant);
      for (const j of jobs.values()) {
        if (j.catalogId === request.catalogId) throw fail('download.busy', `${model.name} is already being downloaded.`);
      }
      const jobId = nextJob++;
      jobs.set(jobId, { catalogId: model.id, quant: choice, onEvent, stop: 'none' });
      setTimeout(() => {
        onEvent({
          type: 'started',
          jobId,
          catalogId: model.id,
          quant: choice.quant,
          installedId: choice.installedId,
          quantizeHere: request.quantizeHere,
        });
        run(jobId, model);
      }, 0);
      return later({ jobId, installedId: choice.installedId, quant: choice.quant });
    },
    async pausePull(jobId) {
      record('pausePull', [jobId]);
      const j = jobs.get(jobId);
      if (!j) throw fail('download.no_job', `No download ${jobId} is running or paused.`);
      j.stop = 'pause';
      return later(undefined);
    },
    async cancelPull(jobId) {
      record('cancelPull', [jobId]);
      const j = jobs.get(jobId);
      if (j) j.stop = 'cancel';
      return later(undefined);
    },
  };
}
