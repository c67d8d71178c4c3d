// Cabildo's chat widget for citizens. A portal adds it with one tag:
//   <script src="https://cabildo.example.gob/widget.js" data-lang="es" data-register="usted" defer></script>
// It draws a button and a chat panel inside a Shadow DOM (the page's CSS does not reach in,
// ours does not leak out), and asks the server it was loaded from (POST /v1/ask, streamed).
// Text from documents and from the model is always inserted as text, never as HTML.
// Options (data-*): lang (es|pt|en; default the page's lang), register (usted|tu|vos),
// jurisdiction (e.g. "cl"), title, position (right|left), open ("true": open at load).
// On /embed the same options come from the page's query string and the panel fills the page.
// Served as one script: wrapped in a function scope together with sse.js (pages.rs).
  const script = document.currentScript;
  if (!script) return;
  const api = new URL(script.src, location.href).origin;
  const embedded = script.hasAttribute('data-embedded');
  const params = embedded ? new URLSearchParams(location.search) : null;
  const option = (name) => (params ? params.get(name) : script.getAttribute('data-' + name)) || '';

  const STRINGS = {
    es: {
      open: 'Preguntas sobre leyes', title: 'Consulta sobre normas', close: 'Cerrar',
      ask: 'Escriba su pregunta', send: 'Enviar', you: 'Usted', bot: 'Cabildo',
      intro: 'Respondo con lo que dicen las normas publicadas, citando cada artículo. No es asesoría legal.',
      sources: 'Fuentes', closest: 'Disposiciones más cercanas', quote: 'Ver el texto citado', page: 'pág.',
      abstained: 'Las normas disponibles no responden esta pregunta.',
      useful: 'Útil', notUseful: 'No útil', rate: '¿Le sirvió esta respuesta?',
      comment: 'Comentario (opcional)', sendComment: 'Enviar comentario', thanks: 'Gracias por su opinión.',
      busy: 'Buscando en las normas…', failed: 'No se pudo responder. Intente de nuevo.',
      wait: 'Hay muchas consultas en este momento. Intente de nuevo en unos segundos.',
      offline: 'No hay conexión con el servicio.', official: '(abre el sitio oficial)',
    },
    pt: {
      open: 'Perguntas sobre leis', title: 'Consulta sobre normas', close: 'Fechar',
      ask: 'Escreva sua pergunta', send: 'Enviar', you: 'Você', bot: 'Cabildo',
      intro: 'Respondo com o que dizem as normas publicadas, citando cada artigo. Não é assessoria jurídica.',
      sources: 'Fontes', closest: 'Dispositivos mais próximos', quote: 'Ver o texto citado', page: 'p.',
      abstained: 'As normas disponíveis não respondem a esta pergunta.',
      useful: 'Útil', notUseful: 'Não útil', rate: 'Esta resposta ajudou?',
      comment: 'Comentário (opcional)', sendComment: 'Enviar comentário', thanks: 'Obrigado pela sua opinião.',
      busy: 'Buscando nas normas…', failed: 'Não foi possível responder. Tente de novo.',
      wait: 'Há muitas consultas agora. Tente de novo em alguns segundos.',
      offline: 'Sem conexão com o serviço.', official: '(abre o site oficial)',
    },
    en: {
      open: 'Questions about laws', title: 'Ask about the law', close: 'Close',
      ask: 'Type your question', send: 'Send', you: 'You', bot: 'Cabildo',
      intro: 'I answer from the published norms, citing each article. This is not legal advice.',
      sources: 'Sources', closest: 'Closest provisions', quote: 'Show the quoted text', page: 'p.',
      abstained: 'The available norms do not answer this question.',
      useful: 'Useful', notUseful: 'Not useful', rate: 'Did this answer help?',
      comment: 'Comment (optional)', sendComment: 'Send comment', thanks: 'Thank you for your feedback.',
      busy: 'Searching the norms…', failed: 'The answer failed. Please try again.',
      wait: 'Too many questions right now. Please try again in a few seconds.',
      offline: 'The service cannot be reached.', official: '(opens the official site)',
    },
  };
  // Spanish in the register the portal chose: tú (tuteo) and vos (voseo) besides usted.
  const REGISTERS = {
    tu: { ask: 'Escribe tu pregunta', you: 'Tú', rate: '¿Te sirvió esta respuesta?', thanks: 'Gracias por tu opinión.',
      failed: 'No se pudo responder. Inténtalo de nuevo.', wait: 'Hay muchas consultas en este momento. Inténtalo de nuevo en unos segundos.' },
    vos: { ask: 'Escribí tu pregunta', you: 'Vos', rate: '¿Te sirvió esta respuesta?', thanks: 'Gracias por tu opinión.',
      failed: 'No se pudo responder. Probá de nuevo.', wait: 'Hay muchas consultas en este momento. Probá de nuevo en unos segundos.' },
  };

  const pageLang = (document.documentElement.lang || '').slice(0, 2).toLowerCase();
  const lang = [option('lang').toLowerCase(), pageLang].find((l) => l in STRINGS) || 'es';
  const register = { 'tú': 'tu', tu: 'tu', vos: 'vos', usted: 'usted' }[option('register').toLowerCase()] || 'usted';
  const t = Object.assign({}, STRINGS[lang], lang === 'es' ? REGISTERS[register] : null);
  if (option('title')) t.title = option('title');
  const jurisdiction = option('jurisdiction').toLowerCase();
  const left = option('position') === 'left';
  const MAX_TURNS = 20;

  const CSS = `
:host { all: initial !important; }
.cab { --accent: var(--cabildo-accent, #0b5394); --accent-text: var(--cabildo-accent-text, #ffffff);
  --bg: var(--cabildo-background, #ffffff); --text: var(--cabildo-text, #1b1b1b); --muted: var(--cabildo-muted, #4a4a4a);
  --line: var(--cabildo-border, #767676); --soft: var(--cabildo-soft, #eef3f8); --radius: var(--cabildo-radius, 12px);
  font-family: var(--cabildo-font, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  font-size: 16px; line-height: 1.45; color: var(--text); }
.cab *, .cab *::before, .cab *::after { box-sizing: border-box; }
.launcher { position: fixed; bottom: 16px; ${left ? 'left' : 'right'}: 16px; z-index: 2147483000;
  background: var(--accent); color: var(--accent-text); border: 0; border-radius: 999px; padding: 12px 20px;
  font: inherit; font-weight: 600; cursor: pointer; box-shadow: 0 2px 8px rgba(0,0,0,.3); }
.panel { position: fixed; bottom: 16px; ${left ? 'left' : 'right'}: 16px; z-index: 2147483001;
  width: min(420px, calc(100vw - 16px)); height: min(640px, calc(100vh - 32px));
  display: flex; flex-direction: column; background: var(--bg); color: var(--text);
  border: 1px solid var(--line); border-radius: var(--radius); box-shadow: 0 6px 24px rgba(0,0,0,.25); overflow: hidden; }
.panel[hidden], .launcher[hidden] { display: none; }
.embedded .panel { position: static; width: 100%; height: 100vh; border: 0; border-radius: 0; box-shadow: none; }
@media (max-width: 480px) { .panel { ${left ? 'left' : 'right'}: 0; bottom: 0; width: 100vw; height: 100vh; border-radius: 0; } }
header { display: flex; align-items: center; justify-content: space-between; gap: 8px;
  background: var(--accent); color: var(--accent-text); padding: 10px 12px; }
h2 { font-size: 1.05em; margin: 0; font-weight: 600; }
.close { background: transparent; color: inherit; border: 1px solid currentColor; border-radius: 8px;
  font: inherit; min-width: 44px; min-height: 44px; cursor: pointer; }
.log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 12px; }
.msg { max-width: 92%; padding: 10px 12px; border-radius: var(--radius); overflow-wrap: anywhere; }
.msg p { margin: 0; white-space: pre-wrap; }
.who { display: block; font-size: .8em; font-weight: 600; color: var(--muted); margin-bottom: 2px; }
.user { align-self: flex-end; background: var(--soft); }
.bot { align-self: flex-start; border: 1px solid var(--line); }
.intro { color: var(--muted); font-size: .9em; margin: 0; }
.notice { font-weight: 600; margin: 0 0 6px; }
.sources { margin: 8px 0 0; padding-left: 1.4em; font-size: .92em; }
h3.who { margin: 10px 0 0; }
.sources li { margin: 4px 0; }
a { color: var(--accent); text-decoration: underline; }
details { margin-top: 2px; }
summary { cursor: pointer; color: var(--muted); min-height: 24px; }
blockquote { margin: 4px 0; padding: 6px 8px; border-left: 3px solid var(--accent); background: var(--soft); white-space: pre-wrap; }
.rate { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; margin-top: 10px; font-size: .9em; }
.rate button, form button, .comment button { font: inherit; min-height: 44px; padding: 6px 12px; border-radius: 8px; cursor: pointer;
  border: 1px solid var(--accent); background: var(--bg); color: var(--accent); }
.rate button[aria-pressed="true"] { background: var(--accent); color: var(--accent-text); }
.comment { display: flex; flex-direction: column; gap: 4px; width: 100%; }
textarea { font: inherit; color: var(--text); background: var(--bg); border: 1px solid var(--line); border-radius: 8px;
  padding: 8px; width: 100%; resize: vertical; }
form { display: flex; gap: 8px; padding: 10px 12px; border-top: 1px solid var(--line); align-items: flex-end; }
form textarea { flex: 1; min-height: 44px; max-height: 30vh; }
form button[type=submit] { background: var(--accent); color: var(--accent-text); border-color: var(--accent); }
button:disabled { opacity: .6; cursor: progress; }
:focus-visible { outline: 3px solid var(--cabildo-focus, #c85a00); outline-offset: 2px; }
.sr { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden; clip: rect(0 0 0 0); border: 0; white-space: nowrap; }
.status { color: var(--muted); font-style: italic; }
@media (prefers-reduced-motion: no-preference) { .panel:not([hidden]) { animation: rise .15s ease-out; } }
@keyframes rise { from { transform: translateY(12px); opacity: 0; } to { transform: none; opacity: 1; } }
`;

  // Elements are made with their text, never from HTML strings.
  const el = (tag, attrs, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    e.append(...children.filter((c) => c != null));
    return e;
  };

  const host = document.createElement('cabildo-chat');
  const root = host.attachShadow({ mode: 'open' });
  if (root.adoptedStyleSheets !== undefined && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.append(el('style', { text: CSS }));
  }

  const launcher = el('button', { class: 'launcher', type: 'button', 'aria-expanded': 'false', 'aria-controls': 'cabildo-panel', text: t.open });
  const closeButton = el('button', { class: 'close', type: 'button', 'aria-label': t.close, text: '×' });
  const log = el('div', { class: 'log', role: 'region', 'aria-label': t.title, tabindex: '0' },
    el('p', { class: 'intro', text: t.intro }));
  // Announces each checked sentence once as it arrives, not the whole answer again.
  const live = el('div', { class: 'sr', 'aria-live': 'polite', 'aria-atomic': 'true' });
  const input = el('textarea', { id: 'cabildo-question', rows: '2', maxlength: '2000', required: '' });
  const send = el('button', { type: 'submit', text: t.send });
  const form = el('form', {}, el('label', { class: 'sr', for: 'cabildo-question', text: t.ask }), input, send);
  input.placeholder = t.ask;
  const panel = el('section', { class: 'panel', id: 'cabildo-panel', role: 'dialog', 'aria-labelledby': 'cabildo-title', hidden: '' },
    el('header', {}, el('h2', { id: 'cabildo-title', text: t.title }), embedded ? null : closeButton),
    log, live, form);
  const frame = el('div', { class: embedded ? 'cab embedded' : 'cab', lang }, embedded ? null : launcher, panel);
  root.append(frame);

  const history = [];
  let busy = false;

  function openPanel() {
    panel.hidden = false;
    launcher.hidden = true;
    launcher.setAttribute('aria-expanded', 'true');
    input.focus();
  }
  function closePanel() {
    panel.hidden = true;
    launcher.hidden = false;
    launcher.setAttribute('aria-expanded', 'false');
    launcher.focus();
  }
  launcher.addEventListener('click', openPanel);
  closeButton.addEventListener('click', closePanel);
  panel.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !embedded) { e.preventDefault(); closePanel(); }
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const question = input.value.trim();
    if (question && !busy) ask(question);
  });

  function say(text) { live.textContent = text; }

  function message(cls, who) {
    const body = el('p', { class: 'text' });
    const box = el('div', { class: 'msg ' + cls }, el('span', { class: 'who', text: who }), body);
    log.append(box);
    return { box, body };
  }

  async function ask(question) {
    busy = true;
    send.disabled = true;
    input.value = '';
    message('user', t.you).body.textContent = question;
    const reply = message('bot', t.bot);
    reply.box.setAttribute('aria-busy', 'true');
    const status = el('span', { class: 'status', text: t.busy });
    reply.body.append(status);
    say(t.busy);
    log.scrollTop = log.scrollHeight;
    const body = { question, language: lang, register, history: history.slice(-MAX_TURNS), stream: true };
    if (jurisdiction) body.filters = { jurisdiction: [jurisdiction] };
    let text = '';
    let final = null;
    try {
      const response = await fetch(api + '/v1/ask', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'accept-language': lang },
        body: JSON.stringify(body),
        credentials: 'omit',
      });
      if (!response.ok) throw new Error(response.status === 429 || response.status === 503 ? t.wait : await problemText(response));
      for await (const [name, data] of serverEvents(response)) {
        if (name === 'token') {
          status.remove();
          const piece = JSON.parse(data).text;
          text += piece;
          reply.body.append(document.createTextNode(piece));
          say(piece);
          log.scrollTop = log.scrollHeight;
        } else if (name === 'citations') {
          final = JSON.parse(data);
        } else if (name === 'error') {
          throw new Error(JSON.parse(data).detail || t.failed);
        }
      }
      if (!final) throw new Error(t.failed);
      status.remove();
      if (final.answer && final.answer !== text) reply.body.textContent = final.answer;
      showSources(reply.box, final);
      history.push({ role: 'user', content: question }, { role: 'assistant', content: final.answer });
      if (final.id) reply.box.append(rating(final.id));
      say(t.sources + ': ' + final.citations.map((c) => c.label).join('; '));
    } catch (err) {
      status.remove();
      const why = err instanceof TypeError ? t.offline : err.message || t.failed;
      reply.body.append(el('span', { class: 'notice', role: 'alert', text: why }));
    } finally {
      reply.box.removeAttribute('aria-busy');
      busy = false;
      send.disabled = false;
      log.scrollTop = log.scrollHeight;
    }
  }

  async function problemText(response) {
    try {
      const p = await response.json();
      return p.detail || p.title || t.failed;
    } catch (_) {
      return t.failed;
    }
  }

  function showSources(box, answer) {
    if (answer.abstained) box.insertBefore(el('p', { class: 'notice', text: t.abstained }), box.children[1]);
    if (!answer.citations || !answer.citations.length) return;
    const list = el('ol', { class: 'sources' });
    for (const c of answer.citations) {
      const label = c.label + (c.page ? ` (${t.page} ${c.page})` : '');
      const link = c.url
        ? el('a', { href: c.url, target: '_blank', rel: 'noopener noreferrer', text: label },
          el('span', { class: 'sr', text: ' ' + t.official }))
        : el('span', { text: label });
      const quote = c.quote
        ? el('details', {}, el('summary', { text: t.quote }), el('blockquote', { text: c.quote }))
        : null;
      list.append(el('li', { value: String(c.n) }, link, quote));
    }
    box.append(el('h3', { class: 'who', text: answer.abstained ? t.closest : t.sources }), list);
  }

  // Useful / not useful, then an optional comment; each reaches POST /v1/feedback.
  function rating(answerId) {
    const thanks = el('span', { role: 'status' });
    const comment = el('textarea', { rows: '2', maxlength: '2000', 'aria-label': t.comment });
    comment.placeholder = t.comment;
    let chosen = null;
    const post = async (rating, text) => {
      const response = await fetch(api + '/v1/feedback', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'accept-language': lang },
        body: JSON.stringify(text ? { answer_id: answerId, rating, comment: text } : { answer_id: answerId, rating }),
        credentials: 'omit',
      });
      thanks.textContent = response.ok ? t.thanks : t.failed;
    };
    const sendComment = el('button', { type: 'button', text: t.sendComment, onclick: () => {
      if (chosen && comment.value.trim()) post(chosen, comment.value.trim()).catch(() => { thanks.textContent = t.offline; });
    } });
    const more = el('div', { class: 'comment', hidden: '' }, comment, sendComment);
    const choice = (rating, label) => el('button', { type: 'button', 'aria-pressed': 'false', text: label, onclick: (e) => {
      chosen = rating;
      for (const b of group.querySelectorAll('button[aria-pressed]')) b.setAttribute('aria-pressed', String(b === e.currentTarget));
      more.hidden = false;
      post(rating, '').catch(() => { thanks.textContent = t.offline; });
    } });
    const group = el('div', { class: 'rate', role: 'group', 'aria-label': t.rate },
      el('span', { text: t.rate }), choice('useful', t.useful), choice('not_useful', t.notUseful), thanks, more);
    return group;
  }

  const mount = () => {
    document.body.append(host);
    if (embedded) {
      document.documentElement.lang = lang;
      document.title = t.title;
      document.body.style.margin = '0';
    }
    if (embedded || option('open') === 'true') {
      panel.hidden = false;
      launcher.hidden = true;
      launcher.setAttribute('aria-expanded', 'true');
    }
  };
  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount);
