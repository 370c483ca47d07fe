/**
 * The Chat view: the conversation sidebar, the thread with its streaming reply, the context
 * meter, the chat settings panel and the message box. Registers the actions the app's keyboard
 * shortcuts call (new chat, focus, search, stop, next/previous conversation).
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import { Icon } from '../icons';
import { useI18n } from '../i18n';
import { ChatPanel } from './ChatPanel';
import { Composer } from './Composer';
import { ConversationList, shownTitle } from './ConversationList';
import { MessageItem } from './MessageItem';
import { useChat } from './useChat';

export function ChatView() {
  const { t } = useI18n();
  const app = useApp();
  const chat = useChat();
  const [panelOpen, setPanelOpen] = useState(false);
  const inputRef = useRef<HTMLTextAreaElement>(null);
  const searchRef = useRef<HTMLInputElement>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const stickToBottom = useRef(true);
  const [flash, setFlash] = useState<number | null>(null);

  const defaultModel = app.models.find((m) => m.isDefault);
  const current = chat.conversations.find((c) => c.id === chat.currentId);

  const newChat = () => {
    void chat.open(null);
    inputRef.current?.focus();
  };

  app.chatActions.current = {
    newChat,
    focusInput: () => inputRef.current?.focus(),
    focusSearch: () => searchRef.current?.focus(),
    stop: chat.stop,
    moveConversation: (delta) => {
      const list = chat.conversations;
      if (list.length === 0) return;
      const at = list.findIndex((c) => c.id === chat.currentId);
      const next = at < 0 ? (delta > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, at + delta));
      void chat.open(list[next].id);
    },
  };

  // Follow a streaming reply while the reader is at the bottom.
  const onScroll = () => {
    const el = scroller.current;
    if (el) stickToBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  };
  const lastText = chat.thread[chat.thread.length - 1]?.content;
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && stickToBottom.current && flash === null) el.scrollTop = el.scrollHeight;
  }, [chat.thread.length, lastText, flash]);

  useEffect(() => {
    if (flash === null) return;
    const el = scroller.current?.querySelector(`[data-message-id="${flash}"]`);
    el?.scrollIntoView?.({ block: 'center' });
    const timer = setTimeout(() => setFlash(null), 2000);
    return () => clearTimeout(timer);
  }, [flash, chat.thread]);

  const openFromList = async (id: number, messageId?: number) => {
    stickToBottom.current = true;
    await chat.open(id);
    if (messageId !== undefined) {
      await chat.selectBranch(messageId);
      setFlash(messageId);
    }
  };

  const send = (text: string) => {
    stickToBottom.current = true;
    return chat.send(text);
  };

  return (
    <div class="chat">
      <ConversationList
        conversations={chat.conversations}
        currentId={chat.currentId}
        onOpen={(id, messageId) => void openFromList(id, messageId)}
        onNew={newChat}
        onRename={(id, title) => void chat.rename(id, title)}
        onDelete={(id) => void chat.remove(id)}
        searchRef={searchRef}
      />
      <div class="chat-main">
        <header class="chat-header">
          <div class="chat-heading">
            <h1 class="chat-title" data-user>
              {current ? shownTitle(current, t) : t('chat.newChat')}
            </h1>
            <div class="chat-meta">
              {defaultModel && (
                <span class="chat-model" data-user>
                  {t('chat.model', { name: defaultModel.name })}
                </span>
              )}
              {chat.context && chat.context.total > 0 && (
                <label class="context-meter">
                  <span>{t('chat.contextLabel')}</span>
                  <meter
                    min={0}
                    max={chat.context.total}
                    value={chat.context.used}
                    high={chat.context.total * 0.8}
                    optimum={0}
                  />
                  <span class="context-numbers">
                    {t('chat.contextUsage', { used: chat.context.used, total: chat.context.total })}
                  </span>
                </label>
              )}
            </div>
          </div>
          <button
            type="button"
            class={panelOpen ? 'button-quiet toggled' : 'button-quiet'}
            aria-expanded={panelOpen}
            aria-controls="chat-panel"
            data-action="chat-settings"
            onClick={() => setPanelOpen((o) => !o)}
          >
            <Icon name="sliders" /> {t('chat.settingsToggle')}
          </button>
        </header>
        {panelOpen && <ChatPanel id="chat-panel" />}
        {chat.context && chat.context.dropped > 0 && (
          <p class="context-warning" role="status">
            {t('chat.droppedMessages', { count: chat.context.dropped })}
          </p>
        )}
        <section class="messages" aria-label={t('chat.messages')} ref={scroller} onScroll={onScroll}>
          {chat.thread.length === 0 ? (
            <div class="empty-chat">
              <img src="/hearth.svg" alt="" width={72} height={72} />
              <h2>{t('chat.emptyTitle')}</h2>
              <p>{t('chat.emptyHint')}</p>
            </div>
          ) : (
            chat.thread.map((m, i) => (
              <div class={flash === m.id ? 'flash' : undefined} key={m.id}>
                <MessageItem
                  message={m}
                  streaming={chat.streamingHere && m.role === 'assistant' && m.status === 'streaming' && i === chat.thread.length - 1}
                  busy={chat.streamingHere}
                  onEdit={(text) => void chat.send(text, m.id)}
                  onRegenerate={() => void chat.regenerate(m.id)}
                  onSelect={(id) => void chat.selectBranch(id)}
                />
              </div>
            ))
          )}
        </section>
        {!defaultModel && (
          <div class="no-model" role="status">
            <span>{t('chat.noModel')}</span>
            <button type="button" class="button-primary" onClick={() => app.setView('models')}>
              {t('chat.goToModels')}
            </button>
          </div>
        )}
        <Composer
          inputRef={inputRef}
          streaming={chat.streamingHere}
          blocked={!!chat.stream}
          onSend={send}
          onStop={() => chat.stop()}
        />
      </div>
    </div>
  );
}
