/**
 * The chat view's state: the conversation list, the shown thread, and at most one streaming
 * reply (its text arrives through the backend's events and is laid over the thread until the
 * reply ends, when the thread is read again from the store). Everything the chat view does goes
 * through the functions returned here.
 */
import { useCallback, useEffect, useReducer, useRef, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import { ReplyAnnouncer } from '../announcer';
import type { ChatEvent, ConversationSummary, StartedJob, ThreadMessage } from '../backend/types';
import { toAppError } from '../backend/types';
import { useI18n } from '../i18n';

export interface Stream {
  conversationId: number;
  jobId: number | null;
  assistantMessageId: number | null;
  text: string;
  stopRequested: boolean;
  ended: boolean;
}

export interface ContextUse {
  used: number;
  total: number;
  dropped: number;
}

/** Ids given to the messages shown before the backend has answered. */
const PENDING_USER = -1;
const PENDING_REPLY = -2;

function pendingMessage(id: number, role: 'user' | 'assistant', content: string, parentId: number | null): ThreadMessage {
  return {
    id,
    parentId,
    role,
    content,
    status: role === 'assistant' ? 'streaming' : 'done',
    error: null,
    model: null,
    siblingIds: [id],
    siblingIndex: 0,
    promptTokens: null,
    completionTokens: null,
    ttftMs: null,
    tokensPerSecond: null,
    createdAt: Date.now(),
  };
}

export function useChat() {
  const { backend, report, announce, models } = useApp();
  const { t } = useI18n();
  const [conversations, setConversations] = useState<ConversationSummary[]>([]);
  const [currentId, setCurrentId] = useState<number | null>(null);
  const [thread, setThread] = useState<ThreadMessage[]>([]);
  const [context, setContext] = useState<ContextUse | null>(null);
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const streamRef = useRef<Stream | null>(null);
  const currentRef = useRef<number | null>(null);
  currentRef.current = currentId;

  const contextLength = models.find((m) => m.isDefault)?.contextLength ?? 0;

  const loadConversations = useCallback(async () => {
    try {
      setConversations(await backend.conversations());
    } catch (e) {
      report(toAppError(e));
    }
  }, [backend, report]);

  const loadThread = useCallback(
    async (id: number | null) => {
      if (id === null) {
        setThread([]);
        setContext(null);
        return;
      }
      try {
        const messages = await backend.thread(id);
        if (currentRef.current !== id) return;
        setThread(messages);
        const last = [...messages].reverse().find((m) => m.role === 'assistant' && m.promptTokens != null);
        setContext(
          last && contextLength
            ? { used: (last.promptTokens ?? 0) + (last.completionTokens ?? 0), total: contextLength, dropped: 0 }
            : null,
        );
      } catch (e) {
        report(toAppError(e));
      }
    },
    [backend, report, contextLength],
  );

  useEffect(() => {
    void loadConversations();
  }, [loadConversations]);

  const open = useCallback(
    async (id: number | null) => {
      currentRef.current = id;
      setCurrentId(id);
      await loadThread(id);
    },
    [loadThread],
  );

  /** Runs one reply: `start` asks the backend; events update the overlay until it ends. */
  const runReply = useCallback(
    async (conversationId: number, start: (onEvent: (e: ChatEvent) => void) => Promise<StartedJob>) => {
      const s: Stream = {
        conversationId,
        jobId: null,
        assistantMessageId: null,
        text: '',
        stopRequested: false,
        ended: false,
      };
      streamRef.current = s;
      rerender(0);
      const speaker = new ReplyAnnouncer((sentence) => announce(sentence, true));
      announce(t('announce.replying'));

      const end = async () => {
        s.ended = true;
        if (streamRef.current === s) streamRef.current = null;
        await loadConversations();
        if (currentRef.current === conversationId) await loadThread(conversationId);
        rerender(0);
      };
      const onEvent = (e: ChatEvent) => {
        if (s.ended) return;
        switch (e.type) {
          case 'started':
            s.jobId = e.jobId;
            s.assistantMessageId = e.assistantMessageId;
            if (e.contextLength > 0) {
              setContext({ used: e.promptTokens, total: e.contextLength, dropped: e.droppedMessages });
            }
            if (s.stopRequested) void backend.cancel(e.jobId);
            break;
          case 'delta':
            s.text += e.text;
            speaker.push(e.text);
            break;
          case 'done':
            speaker.flush();
            announce(t(e.status === 'done' ? 'announce.done' : 'announce.stopped'));
            void end();
            break;
          case 'failed':
            speaker.flush();
            announce(t('announce.failed', { error: e.error.message }));
            void end();
            break;
        }
        rerender(0);
      };
      try {
        const job = await start(onEvent);
        s.jobId = job.jobId;
        s.assistantMessageId = job.assistantMessageId;
        if (s.stopRequested && !s.ended) void backend.cancel(job.jobId);
        if (!s.ended && currentRef.current === conversationId) await loadThread(conversationId);
      } catch (e) {
        s.ended = true;
        if (streamRef.current === s) streamRef.current = null;
        report(toAppError(e));
        if (currentRef.current === conversationId) await loadThread(conversationId);
        rerender(0);
        return false;
      }
      return true;
    },
    [announce, backend, loadConversations, loadThread, report, t],
  );

  const send = useCallback(
    async (text: string, editOf?: number) => {
      if (streamRef.current || !text.trim()) return false;
      let id = currentRef.current;
      if (id === null) {
        try {
          const c = await backend.createConversation();
          id = c.id;
          currentRef.current = id;
          setCurrentId(id);
          setConversations((list) => [c, ...list]);
        } catch (e) {
          report(toAppError(e));
          return false;
        }
      }
      // Show the question at once, where it will go.
      setThread((messages) => {
        const cut = editOf != null ? messages.findIndex((m) => m.id === editOf) : messages.length;
        const kept = messages.slice(0, cut < 0 ? messages.length : cut);
        const parent = kept.length ? kept[kept.length - 1].id : null;
        return [...kept, pendingMessage(PENDING_USER, 'user', text, parent), pendingMessage(PENDING_REPLY, 'assistant', '', PENDING_USER)];
      });
      const conversationId = id;
      return runReply(conversationId, (onEvent) => backend.send({ conversationId, text, editOf: editOf ?? null }, onEvent));
    },
    [backend, report, runReply],
  );

  const regenerate = useCallback(
    async (assistantMessageId: number) => {
      const id = currentRef.current;
      if (streamRef.current || id === null) return false;
      setThread((messages) => {
        const at = messages.findIndex((m) => m.id === assistantMessageId);
        if (at < 0) return messages;
        const kept = messages.slice(0, at);
        return [...kept, pendingMessage(PENDING_REPLY, 'assistant', '', kept[kept.length - 1]?.id ?? null)];
      });
      return runReply(id, (onEvent) => backend.regenerate(assistantMessageId, onEvent));
    },
    [backend, runReply],
  );

  /** Stops the streaming reply; false when nothing is streaming. */
  const stop = useCallback(() => {
    const s = streamRef.current;
    if (!s || s.ended) return false;
    s.stopRequested = true;
    if (s.jobId !== null) void backend.cancel(s.jobId);
    rerender(0);
    return true;
  }, [backend]);

  const selectBranch = useCallback(
    async (messageId: number) => {
      if (streamRef.current && streamRef.current.conversationId === currentRef.current) return;
      try {
        await backend.selectBranch(messageId);
      } catch (e) {
        report(toAppError(e));
      }
      await loadThread(currentRef.current);
    },
    [backend, loadThread, report],
  );

  const rename = useCallback(
    async (id: number, title: string) => {
      try {
        await backend.renameConversation(id, title);
      } catch (e) {
        report(toAppError(e));
      }
      await loadConversations();
    },
    [backend, loadConversations, report],
  );

  const remove = useCallback(
    async (id: number) => {
      try {
        await backend.deleteConversation(id);
      } catch (e) {
        report(toAppError(e));
      }
      if (currentRef.current === id) await open(null);
      await loadConversations();
    },
    [backend, loadConversations, open, report],
  );

  const stream = streamRef.current;
  // The streaming reply's text is laid over its message (the last streaming assistant message).
  const shown =
    stream && stream.conversationId === currentId
      ? thread.map((m, i) =>
          m.role === 'assistant' && m.status === 'streaming' && i === thread.length - 1
            ? { ...m, content: stream.text }
            : m,
        )
      : thread;

  return {
    conversations,
    currentId,
    thread: shown,
    context,
    stream,
    streamingHere: !!stream && stream.conversationId === currentId,
    open,
    send,
    regenerate,
    stop,
    selectBranch,
    rename,
    remove,
    reloadConversations: loadConversations,
  };
}

export type ChatModel = ReturnType<typeof useChat>;
