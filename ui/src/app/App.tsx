/**
 * The window's layout: loads the app's state, then shows the startup error, the welcome screen
 * (no model yet) or the navigation rail with the Chat, Models and Settings views. Owns the
 * theme, the language, the keyboard shortcuts, file drops, banners and the aria-live region.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { AppError, AppInfo, Backend, InstalledModel, Settings } from '../backend/types';
import { toAppError } from '../backend/types';
import { ChatView } from '../chat/ChatView';
import { HelpOverlay } from '../help/HelpOverlay';
import { Icon, type IconName } from '../icons';
import { I18nContext, i18nFor, useI18n, type Messages, type MessageKey, type Vars } from '../i18n';
import { ModelsView } from '../models/ModelsView';
import { SettingsView } from '../settings/SettingsView';
import { actionFor } from '../shortcuts';
import { describeError } from '../errors';
import { DocumentsView, isDocumentPath } from '../documents/DocumentsView';
import { applyTheme } from '../theme';
import { TranslateView } from '../translate/TranslateView';
import { Welcome } from '../welcome/Welcome';
import { AppContext, type AppContextValue, type ChatActions, type View } from './context';

interface Props {
  backend: Backend;
  /** Test hook: replaces the string catalog (the pseudo-language test). */
  messages?: Messages;
}

interface Loaded {
  info: AppInfo;
  settings: Settings;
  models: InstalledModel[];
}

let bannerSeq = 0;

export function App({ backend, messages }: Props) {
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [fatal, setFatal] = useState<AppError | null>(null);
  const [view, setView] = useState<View>('chat');
  const [welcomeSkipped, setWelcomeSkipped] = useState(false);
  const [helpOpen, setHelpOpen] = useState(false);
  const [dragging, setDragging] = useState(false);
  const [errors, setErrors] = useState<{ id: number; error: AppError }[]>([]);
  const [toasts, setToasts] = useState<{ id: number; key: MessageKey; vars?: Vars }[]>([]);
  const [live, setLive] = useState<{ id: number; text: string; quoted: boolean }[]>([]);
  const chatActions = useRef<ChatActions | null>(null);
  /** Documents dropped on the welcome screen, for the Documents view once it is shown. */
  const [droppedDocuments, setDroppedDocuments] = useState<string[]>([]);
  const welcomeShown = useRef(false);
  welcomeShown.current = loaded !== null && loaded.models.length === 0 && !welcomeSkipped;
  const takeDroppedDocuments = useCallback(() => setDroppedDocuments([]), []);
  const viewRef = useRef(view);
  viewRef.current = view;

  const language = loaded?.settings.language ?? 'en';
  const i18n = useMemo(() => i18nFor(language, messages), [language, messages]);
  const { t } = i18n;

  useEffect(() => {
    let alive = true;
    (async () => {
      try {
        const info = await backend.appInfo();
        if (info.startupError) {
          if (alive) setFatal(info.startupError);
          return;
        }
        const [settings, models] = await Promise.all([backend.settings(), backend.models()]);
        if (alive) setLoaded({ info, settings, models });
      } catch (e) {
        if (alive) setFatal(toAppError(e));
      }
    })();
    return () => {
      alive = false;
    };
  }, [backend]);

  const theme = loaded?.settings.theme ?? 'system';
  useEffect(() => applyTheme(theme), [theme]);
  useEffect(() => {
    document.documentElement.lang = i18n.lang;
    document.title = t('app.name');
  }, [i18n]);

  const report = useCallback((error: AppError) => {
    const id = ++bannerSeq;
    setErrors((list) => [...list.slice(-2), { id, error }]);
  }, []);

  // New lines are added to the live region (and old ones dropped), so each is read once.
  const announce = useCallback((text: string, quoted = false) => {
    const id = ++bannerSeq;
    setLive((lines) => [...lines.slice(-5), { id, text, quoted }]);
  }, []);

  const toast = useCallback(
    (key: MessageKey, vars?: Vars) => {
      const id = ++bannerSeq;
      // The same message again replaces the one on screen instead of piling up.
      const same = (x: { key: MessageKey; vars?: Vars }) =>
        x.key === key && JSON.stringify(x.vars ?? {}) === JSON.stringify(vars ?? {});
      setToasts((list) => [...list.filter((x) => !same(x)).slice(-2), { id, key, vars }]);
      setTimeout(() => setToasts((list) => list.filter((x) => x.id !== id)), 4000);
    },
    [],
  );

  const refreshModels = useCallback(async () => {
    try {
      const models = await backend.models();
      setLoaded((l) => (l ? { ...l, models } : l));
    } catch (e) {
      report(toAppError(e));
    }
  }, [backend, report]);

  const saveSettings = useCallback(
    async (next: Settings) => {
      try {
        const saved = await backend.updateSettings(next);
        setLoaded((l) => (l ? { ...l, settings: saved } : l));
        return true;
      } catch (e) {
        report(toAppError(e));
        return false;
      }
    },
    [backend, report],
  );

  const importModel = useCallback(
    async (path: string) => {
      const name = path.split(/[\\/]/).pop() ?? path;
      if (!/\.gguf$/i.test(path.trim())) {
        report({ code: 'import.not_gguf', message: t('models.notGguf', { name }) });
        return null;
      }
      try {
        const model = await backend.importModel(path.trim());
        await refreshModels();
        toast('models.imported', { name: model.name });
        announce(t('announce.imported', { name: model.name }));
        return model;
      } catch (e) {
        report(toAppError(e));
        return null;
      }
    },
    [backend, refreshModels, report, toast, announce, t],
  );

  // Files dropped anywhere on the window are imported.
  useEffect(() => {
    let stop: (() => void) | null = null;
    let alive = true;
    backend
      .onFileDrop((event) => {
        if (event.type === 'hover') setDragging(true);
        else if (event.type === 'cancel') setDragging(false);
        else {
          setDragging(false);
          // The Translate view reads dropped documents itself; the Documents view takes every
          // other file dropped (and shows itself); models are imported here.
          if (viewRef.current === 'translate') return;
          const documents = event.paths.filter(isDocumentPath);
          if (documents.length > 0 && welcomeShown.current) {
            // The Documents view is not shown yet: show it and hand it the files.
            setWelcomeSkipped(true);
            setView('documents');
            setDroppedDocuments(documents);
          }
          const models = event.paths.filter((p) => !isDocumentPath(p));
          if (models.length === 0) return;
          void (async () => {
            for (const path of models) await importModel(path);
            setView('models');
          })();
        }
      })
      .then((unlisten) => {
        if (alive) stop = unlisten;
        else unlisten();
      })
      .catch(() => {
        /* no drops outside the desktop app */
      });
    return () => {
      alive = false;
      stop?.();
    };
  }, [backend, importModel]);

  // Keyboard shortcuts.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const action = actionFor(e);
      if (!action) return;
      const chat = chatActions.current;
      switch (action) {
        case 'help':
          setHelpOpen((open) => !open);
          break;
        case 'stop':
          if (helpOpen) {
            setHelpOpen(false);
            break;
          }
          if (!chat?.stop()) return;
          break;
        case 'viewChat':
          setView('chat');
          break;
        case 'viewModels':
          setView('models');
          break;
        case 'viewSettings':
          setView('settings');
          break;
        case 'viewTranslate':
          setView('translate');
          break;
        case 'viewDocuments':
          setView('documents');
          break;
        default: {
          setView('chat');
          // The chat view may need a frame to mount before it can act.
          const run = () => {
            const c = chatActions.current;
            if (!c) return;
            if (action === 'newChat') c.newChat();
            else if (action === 'focusInput') c.focusInput();
            else if (action === 'search') c.focusSearch();
            else if (action === 'prevConversation') c.moveConversation(-1);
            else if (action === 'nextConversation') c.moveConversation(1);
          };
          if (viewRef.current === 'chat' && chat) run();
          else setTimeout(run, 0);
        }
      }
      e.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [helpOpen]);

  if (fatal) {
    return (
      <I18nContext.Provider value={i18n}>
        <main class="fatal" role="alert">
          <h1>{t('startup.errorTitle')}</h1>
          <p data-user>{fatal.message}</p>
          <p>{t('startup.errorHint')}</p>
        </main>
      </I18nContext.Provider>
    );
  }
  if (!loaded) {
    return (
      <I18nContext.Provider value={i18n}>
        <main class="loading" aria-busy="true">
          <p>{t('common.loading')}</p>
        </main>
      </I18nContext.Provider>
    );
  }

  const ctx: AppContextValue = {
    backend,
    info: loaded.info,
    settings: loaded.settings,
    saveSettings,
    models: loaded.models,
    refreshModels,
    importModel,
    view,
    setView,
    announce,
    report,
    toast,
    chatActions,
    droppedDocuments,
    takeDroppedDocuments,
  };
  const showWelcome = loaded.models.length === 0 && !welcomeSkipped;
  const navItems: { id: View; label: MessageKey; icon: IconName }[] = [
    { id: 'chat', label: 'nav.chat', icon: 'chat' },
    { id: 'translate', label: 'translate.nav', icon: 'translate' },
    { id: 'documents', label: 'documents.nav', icon: 'file' },
    { id: 'models', label: 'nav.models', icon: 'model' },
    { id: 'settings', label: 'nav.settings', icon: 'settings' },
  ];

  return (
    <I18nContext.Provider value={i18n}>
      <AppContext.Provider value={ctx}>
        <div class="app">
          {showWelcome ? (
            <Welcome onSkip={() => setWelcomeSkipped(true)} />
          ) : (
            <>
              <nav class="rail" aria-label={t('nav.label')}>
                <div class="rail-logo" aria-hidden="true">
                  <img src="/hearth.svg" alt="" width={32} height={32} />
                </div>
                {navItems.map((item) => (
                  <button
                    key={item.id}
                    type="button"
                    class="rail-item"
                    aria-current={view === item.id ? 'page' : undefined}
                    data-view={item.id}
                    onClick={() => setView(item.id)}
                  >
                    <Icon name={item.icon} class="rail-icon" />
                    <span class="rail-label">{t(item.label)}</span>
                  </button>
                ))}
                <div class="rail-spacer" />
                <button
                  type="button"
                  class="rail-item"
                  data-action="help"
                  aria-label={t('nav.help')}
                  title={t('nav.help')}
                  onClick={() => setHelpOpen(true)}
                >
                  <Icon name="keyboard" class="rail-icon" />
                </button>
              </nav>
              {/* Every view stays mounted (a reply keeps streaming while another view is shown). */}
              <div class="view" data-current-view={view}>
                <section class="view-pane" hidden={view !== 'chat'} data-pane="chat">
                  <ChatView />
                </section>
                <section class="view-pane" hidden={view !== 'translate'} data-pane="translate">
                  <TranslateView />
                </section>
                <section class="view-pane" hidden={view !== 'documents'} data-pane="documents">
                  <DocumentsView />
                </section>
                <section class="view-pane" hidden={view !== 'models'} data-pane="models">
                  <ModelsView />
                </section>
                <section class="view-pane" hidden={view !== 'settings'} data-pane="settings">
                  <SettingsView />
                </section>
              </div>
            </>
          )}
          <div class="banners">
            {loaded.info.notice && <Notice text={loaded.info.notice} />}
            {errors.map(({ id, error }) => (
              <div class="banner banner-error" role="alert" key={id} data-code={error.code}>
                <span class="banner-title">{t('error.title')}</span>
                <span class="banner-text" data-user>
                  {describeError(error, t)}
                </span>
                <button
                  type="button"
                  class="icon-button"
                  aria-label={t('common.dismiss')}
                  onClick={() => setErrors((l) => l.filter((x) => x.id !== id))}
                >
                  <Icon name="close" />
                </button>
              </div>
            ))}
            {toasts.map(({ id, key, vars }) => (
              <div class="banner banner-ok" role="status" key={id}>
                <span class="banner-text">{t(key, vars)}</span>
              </div>
            ))}
          </div>
          {dragging && (
            <div class="drop-overlay" aria-hidden="true">
              <p>{view === 'translate' ? t('translate.dropHere') : t('documents.dropHere')}</p>
            </div>
          )}
          {helpOpen && <HelpOverlay onClose={() => setHelpOpen(false)} />}
          <div class="visually-hidden" aria-live="polite" aria-relevant="additions" id="live-region">
            {live.map((line) => (
              <p key={line.id} data-user={line.quoted ? '' : undefined}>
                {line.text}
              </p>
            ))}
          </div>
        </div>
      </AppContext.Provider>
    </I18nContext.Provider>
  );
}

function Notice({ text }: { text: string }) {
  const { t } = useI18n();
  const [open, setOpen] = useState(true);
  if (!open) return null;
  return (
    <div class="banner banner-notice" role="status">
      <span class="banner-title">{t('notice.title')}</span>
      <span class="banner-text" data-user>
        {text}
      </span>
      <button type="button" class="icon-button" aria-label={t('common.dismiss')} onClick={() => setOpen(false)}>
        <Icon name="close" />
      </button>
    </div>
  );
}
