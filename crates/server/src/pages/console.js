// The caseworkers' console: search with the API's filters, open a provision inside its
// norm, ask with the sources beside the streamed answer, and for admins upload documents,
// watch ingest jobs, revoke API clients and verify the audit chain.
// Credentials (an API key, or a bearer token) are kept in this tab's sessionStorage, never
// in cookies; behind an auth proxy that adds the Authorization header, none are needed.
// Served as one script: wrapped in a function scope together with sse.js (pages.rs).
// Text from documents and from the model is always inserted as text, never as HTML.

const STRINGS = {
  es: {
    skip: 'Saltar al contenido', nav: 'Secciones', search: 'Buscar', ask: 'Preguntar', admin: 'Administración', signin: 'Ingresar',
    signout: 'Salir', anonymous: 'Visitante anónimo', as: 'Sesión', query: 'Texto a buscar', question: 'Pregunta',
    jurisdiction: 'Jurisdicción', kind: 'Tipo de norma', inForce: 'Vigente el', since: 'vigente desde', until: 'hasta', version: 'Versión vigente el', method: 'Método', any: 'Todas', auto: 'Automático',
    results: 'Resultados', none: 'Sin resultados.', open: 'Abrir en la norma', copy: 'Copiar cita', copied: 'Cita copiada',
    official: 'Texto oficial', sources: 'Fuentes', closest: 'Disposiciones más cercanas', quote: 'Texto citado',
    abstained: 'Las normas disponibles no responden esta pregunta.', previous: 'Artículo anterior', next: 'Artículo siguiente',
    credential: 'Credencial', apiKey: 'Clave de API', token: 'Token de acceso (JWT)', kindOf: 'Tipo de credencial', enter: 'Ingresar',
    badCredential: 'La credencial no fue aceptada.', needAdmin: 'Esta vista requiere credenciales de administrador.',
    upload: 'Subir documentos', files: 'Archivos', access: 'Acceso', tenant: 'Organismo (tenant)', redact: 'Reemplazar datos personales',
    send: 'Enviar', jobs: 'Trabajos de ingesta', clients: 'Clientes de la API', audit: 'Registro de auditoría', verify: 'Verificar la cadena',
    intact: 'La cadena está íntegra', broken: 'La cadena está rota', records: 'registros', head: 'último hash', revoke: 'Revocar',
    confirmRevoke: '¿Revocar la clave de', revoked: 'revocada', status: 'Estado', started: 'Inicio', norms: 'Normas', passages: 'Pasajes',
    failures: 'Fallas', name: 'Nombre', role: 'Rol', clearance: 'Nivel', created: 'Creado', working: 'Trabajando…', page: 'pág.',
    reload: 'Actualizar', publicLevel: 'público', internalLevel: 'interno', restrictedLevel: 'reservado', published: 'Publicada',
  },
  pt: {
    skip: 'Pular para o conteúdo', nav: 'Seções', search: 'Buscar', ask: 'Perguntar', admin: 'Administração', signin: 'Entrar',
    signout: 'Sair', anonymous: 'Visitante anônimo', as: 'Sessão', query: 'Texto a buscar', question: 'Pergunta',
    jurisdiction: 'Jurisdição', kind: 'Tipo de norma', inForce: 'Vigente em', since: 'vigente desde', until: 'até', version: 'Versão vigente em', method: 'Método', any: 'Todas', auto: 'Automático',
    results: 'Resultados', none: 'Nenhum resultado.', open: 'Abrir na norma', copy: 'Copiar citação', copied: 'Citação copiada',
    official: 'Texto oficial', sources: 'Fontes', closest: 'Dispositivos mais próximos', quote: 'Texto citado',
    abstained: 'As normas disponíveis não respondem a esta pergunta.', previous: 'Artigo anterior', next: 'Próximo artigo',
    credential: 'Credencial', apiKey: 'Chave de API', token: 'Token de acesso (JWT)', kindOf: 'Tipo de credencial', enter: 'Entrar',
    badCredential: 'A credencial não foi aceita.', needAdmin: 'Esta página exige credenciais de administrador.',
    upload: 'Enviar documentos', files: 'Arquivos', access: 'Acesso', tenant: 'Órgão (tenant)', redact: 'Substituir dados pessoais',
    send: 'Enviar', jobs: 'Trabalhos de ingestão', clients: 'Clientes da API', audit: 'Registro de auditoria', verify: 'Verificar a cadeia',
    intact: 'A cadeia está íntegra', broken: 'A cadeia está quebrada', records: 'registros', head: 'último hash', revoke: 'Revogar',
    confirmRevoke: 'Revogar a chave de', revoked: 'revogada', status: 'Estado', started: 'Início', norms: 'Normas', passages: 'Trechos',
    failures: 'Falhas', name: 'Nome', role: 'Papel', clearance: 'Nível', created: 'Criado', working: 'Trabalhando…', page: 'p.',
    reload: 'Atualizar', publicLevel: 'público', internalLevel: 'interno', restrictedLevel: 'restrito', published: 'Publicada',
  },
  en: {
    skip: 'Skip to content', nav: 'Sections', search: 'Search', ask: 'Ask', admin: 'Administration', signin: 'Sign in',
    signout: 'Sign out', anonymous: 'Anonymous visitor', as: 'Signed in', query: 'Search text', question: 'Question',
    jurisdiction: 'Jurisdiction', kind: 'Kind of norm', inForce: 'In force on', since: 'in force from', until: 'until', version: 'Version in force on', method: 'Method', any: 'All', auto: 'Automatic',
    results: 'Results', none: 'No results.', open: 'Open in its norm', copy: 'Copy citation', copied: 'Citation copied',
    official: 'Official text', sources: 'Sources', closest: 'Closest provisions', quote: 'Quoted text',
    abstained: 'The available norms do not answer this question.', previous: 'Previous article', next: 'Next article',
    credential: 'Credential', apiKey: 'API key', token: 'Access token (JWT)', kindOf: 'Kind of credential', enter: 'Sign in',
    badCredential: 'The credential was not accepted.', needAdmin: 'This view needs an admin\'s credentials.',
    upload: 'Upload documents', files: 'Files', access: 'Access', tenant: 'Agency (tenant)', redact: 'Replace personal data',
    send: 'Send', jobs: 'Ingest jobs', clients: 'API clients', audit: 'Audit log', verify: 'Verify the chain',
    intact: 'The chain is intact', broken: 'The chain is broken', records: 'records', head: 'newest hash', revoke: 'Revoke',
    confirmRevoke: 'Revoke the key of', revoked: 'revoked', status: 'Status', started: 'Started', norms: 'Norms', passages: 'Passages',
    failures: 'Failures', name: 'Name', role: 'Role', clearance: 'Level', created: 'Created', working: 'Working…', page: 'p.',
    reload: 'Refresh', publicLevel: 'public', internalLevel: 'internal', restrictedLevel: 'restricted', published: 'Published',
  },
};
const wanted = new URLSearchParams(location.search).get('lang') || navigator.language || 'es';
const lang = [wanted.slice(0, 2).toLowerCase()].find((l) => l in STRINGS) || 'es';
const t = STRINGS[lang];
document.documentElement.lang = lang;

const main = document.getElementById('main');
const announce = (text) => { document.getElementById('announce').textContent = text; };

const el = (tag, attrs, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  e.append(...children.filter((c) => c != null));
  return e;
};
const field = (label, control, wide) => el('label', { class: wide ? 'wide' : null }, label, control);
const select = (name, options) => el('select', { name }, ...options.map(([value, label]) => el('option', { value, text: label })));

// Credentials and calls.
const KEY = 'cabildo.credential';
const credential = () => { try { return JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch (_) { return null; } };
function headers(extra) {
  const h = Object.assign({ 'accept-language': lang }, extra);
  const c = credential();
  if (c && c.kind === 'key') h['x-api-key'] = c.value;
  if (c && c.kind === 'token') h.authorization = 'Bearer ' + c.value;
  return h;
}
async function call(path, options) {
  const o = Object.assign({ credentials: 'omit' }, options);
  o.headers = headers(o.headers);
  const response = await fetch(path, o);
  if (!response.ok) {
    let detail = response.statusText;
    try { const p = await response.json(); detail = p.detail || p.title || detail; } catch (_) { /* not JSON */ }
    const err = new Error(detail);
    err.status = response.status;
    throw err;
  }
  return response.status === 204 ? null : response.json();
}
const post = (path, body) => call(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

let me = { role: 'anonymous', admin: false };
let catalogue = null; // jurisdictions and kinds of the norms this principal may read

async function whoAmI() {
  try { me = await call('/v1/me'); } catch (e) {
    if (e.status === 401 && credential()) { sessionStorage.removeItem(KEY); return whoAmI(); }
    me = { role: 'anonymous', admin: false };
  }
  const who = document.getElementById('who');
  who.textContent = '';
  if (me.role === 'anonymous') {
    who.append(el('span', { text: t.anonymous }), el('a', { href: '#signin', text: t.signin }));
  } else {
    const label = `${t.as}: ${me.role}${me.tenant ? ' · ' + me.tenant : ''} · ${me.clearance}`;
    who.append(el('span', { id: 'principal', text: label }),
      credential() ? el('button', { type: 'button', class: 'quiet', text: t.signout, onclick: signOut }) : null);
  }
  catalogue = null;
  drawNav();
}
function signOut() {
  sessionStorage.removeItem(KEY);
  whoAmI().then(() => { location.hash = '#search'; route(); });
}

function drawNav() {
  const items = [['#search', t.search], ['#ask', t.ask]];
  if (me.admin) items.push(['#admin', t.admin]);
  const nav = document.getElementById('nav');
  nav.setAttribute('aria-label', t.nav);
  nav.textContent = '';
  const current = location.hash.split('/')[0] || '#search';
  nav.append(el('ul', {}, ...items.map(([href, label]) =>
    el('li', {}, el('a', { href, text: label, 'aria-current': href === current ? 'page' : null })))));
}

async function norms() {
  if (!catalogue) {
    const list = [];
    for (let offset = 0; offset != null;) {
      const page = await call(`/v1/norms?limit=1000&offset=${offset}`);
      list.push(...page.norms);
      offset = page.next_offset;
    }
    catalogue = {
      jurisdictions: [...new Set(list.map((n) => n.jurisdiction))].sort(),
      kinds: [...new Set(list.map((n) => n.kind))].sort(),
    };
  }
  return catalogue;
}

// Filters shared by search and ask.
async function filterFields(withMethod) {
  const c = await norms().catch(() => ({ jurisdictions: [], kinds: [] }));
  const fields = [
    field(t.jurisdiction, select('jurisdiction', [['', t.any], ...c.jurisdictions.map((j) => [j, j.toUpperCase()])])),
    field(t.kind, select('kind', [['', t.any], ...c.kinds.map((k) => [k, k])])),
    field(t.inForce, el('input', { type: 'date', name: 'in_force_on' })),
  ];
  if (withMethod) fields.push(field(t.method, select('method', [['', t.auto], ['lexical', 'lexical'], ['dense', 'dense'], ['hybrid', 'hybrid']])));
  return fields;
}
function filtersOf(form) {
  const f = {};
  if (form.jurisdiction.value) f.jurisdiction = [form.jurisdiction.value];
  if (form.kind.value) f.kind = [form.kind.value];
  if (form.in_force_on.value) f.in_force_on = form.in_force_on.value;
  return f;
}

const citation = (label, url) => (url ? `${label} — ${url}` : label);
async function copyCitation(text, output) {
  try { await navigator.clipboard.writeText(text); } catch (_) {
    const area = el('textarea', { class: 'sr', 'aria-hidden': 'true', tabindex: '-1' });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  output.textContent = `${t.copied}: ${text}`;
  announce(t.copied);
}
// Where a passage sits in its norm: the norm view on the first day of the passage's text.
const normLink = (normId, passageId, day) => `#norm/${encodeURIComponent(normId)}/${encodeURIComponent(passageId)}`
  + (day ? `/${day}` : '');
// "in force from 2009-04-04 until 2023-01-04", for texts a later version replaced or dated ones.
const validity = (from, until) => [from && `${t.since} ${from}`, until && `${t.until} ${until}`].filter(Boolean).join(' ');

function citeActions(label, url, normId, passageId, day) {
  const output = el('output', { class: 'muted' });
  return el('div', { class: 'actions' },
    url ? el('a', { href: url, target: '_blank', rel: 'noopener noreferrer', text: t.official }) : null,
    normId ? el('a', { href: normLink(normId, passageId, day), text: t.open }) : null,
    el('button', { type: 'button', class: 'quiet copy', text: t.copy, onclick: () => copyCitation(citation(label, url), output) }),
    output);
}

// The snippet with its matched terms marked; offsets count Unicode code points.
function snippet(text, highlights) {
  const chars = Array.from(text);
  const p = el('p', { class: 'snippet' });
  let at = 0;
  for (const [start, end] of highlights || []) {
    if (start < at) continue;
    p.append(chars.slice(at, start).join(''), el('mark', { text: chars.slice(start, end).join('') }));
    at = end;
  }
  p.append(chars.slice(at).join(''));
  return p;
}

async function searchView() {
  const form = el('form', { class: 'filters', role: 'search' },
    field(t.query, el('input', { type: 'search', name: 'query', required: true }), true),
    ...(await filterFields(true)),
    el('button', { type: 'submit', text: t.search }));
  const results = el('section', { 'aria-labelledby': 'results-title' });
  main.replaceChildren(el('h1', { text: t.search }), form, results);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { query: form.query.value, k: 10, filters: filtersOf(form) };
    if (form.method.value) body.method = form.method.value;
    results.replaceChildren(el('p', { class: 'muted', text: t.working }));
    try {
      const r = await post('/v1/search', body);
      const list = el('ol', { class: 'hits' }, ...r.hits.map((h) => el('li', { class: 'hit' },
        el('div', { class: 'label', text: h.label + (h.page ? ` (${t.page} ${h.page})` : '') }),
        el('div', { class: 'crumbs', text: h.breadcrumb.join(' › ') }),
        snippet(h.snippet, h.highlights),
        el('p', { class: 'muted validity', text: validity(h.in_force_from, h.in_force_until) }),
        citeActions(h.label, h.url, h.norm_id, h.passage_id, h.in_force_from))));
      results.replaceChildren(el('h2', { id: 'results-title', text: `${t.results} (${r.hits.length})` }),
        r.hits.length ? list : el('p', { text: t.none }));
      announce(`${t.results}: ${r.hits.length}`);
    } catch (err) {
      results.replaceChildren(el('p', { class: 'error', role: 'alert', text: err.message }));
    }
  });
  form.query.focus();
}

async function normView(normId, passageId, day) {
  main.replaceChildren(el('p', { class: 'muted', text: t.working }));
  const path = '/v1/norms/' + encodeURIComponent(normId);
  let n;
  let versions = [];
  try {
    [n, versions] = await Promise.all([
      call(path + (day ? `?in_force_on=${encodeURIComponent(day)}` : '')),
      call(path + '/versions').then((v) => v.versions).catch(() => []),
    ]);
  } catch (err) {
    main.replaceChildren(el('p', { class: 'error', role: 'alert', text: err.message }));
    return;
  }
  const at = Math.max(0, n.passages.findIndex((p) => p.id === passageId));
  const current = n.passages[at];
  const neighbour = (i, label) => (n.passages[i]
    ? el('a', { href: `#norm/${encodeURIComponent(normId)}/${encodeURIComponent(n.passages[i].id)}`, text: `${label}: ${n.passages[i].label}` })
    : null);
  const meta = [n.jurisdiction.toUpperCase(), n.kind, n.number, n.issuing_body,
    n.publication_date && `${t.published} ${n.publication_date}`].filter(Boolean).join(' · ');
  const list = el('div', {}, ...n.passages.map((p, i) => el('article', {
    class: i === at ? 'passage current' : 'passage', id: 'p-' + i, 'aria-current': i === at ? 'true' : null,
  }, el('h3', { tabindex: i === at ? '-1' : null, text: p.label }), el('div', { text: p.text }))));
  // A norm with several versions: pick the day whose text to read.
  const picker = versions.length > 1 ? field(t.version, select('version', [...versions].reverse().map((v) => [
    v.valid_from, v.valid_to ? `${v.valid_from} – ${v.valid_to}` : v.valid_from]))) : null;
  if (picker) {
    const chosen = versions.filter((v) => v.valid_from <= n.in_force_on).pop();
    const box = picker.querySelector('select');
    if (chosen) box.value = chosen.valid_from;
    box.addEventListener('change', () => { location.hash = `#norm/${encodeURIComponent(normId)}/-/${box.value}`; });
  }
  main.replaceChildren(
    el('h1', { text: n.title }),
    el('p', { class: 'norm-meta', text: `${meta} · ${t.inForce} ${n.in_force_on}` }),
    picker,
    current ? el('nav', { 'aria-label': current.label },
      el('p', { class: 'crumbs', text: current.breadcrumb.join(' › ') }),
      el('div', { class: 'actions' }, neighbour(at - 1, t.previous), neighbour(at + 1, t.next)),
      citeActions(current.label, current.url, null, null)) : null,
    list);
  const heading = list.querySelector('.current h3');
  if (heading) { heading.scrollIntoView({ block: 'center' }); heading.focus({ preventScroll: true }); }
}

async function askView() {
  const form = el('form', { class: 'filters' },
    field(t.question, el('textarea', { name: 'question', rows: '3', required: true, maxlength: '2000' }), true),
    ...(await filterFields(true)),
    el('button', { type: 'submit', text: t.ask }));
  const answer = el('div', { class: 'answer', id: 'answer', 'aria-busy': 'false' });
  const sources = el('aside', { class: 'sources', 'aria-labelledby': 'sources-title' },
    el('h2', { id: 'sources-title', text: t.sources }));
  main.replaceChildren(el('h1', { text: t.ask }), form, el('div', { class: 'columns' }, answer, sources));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    answer.textContent = t.working;
    answer.setAttribute('aria-busy', 'true');
    sources.replaceChildren(el('h2', { id: 'sources-title', text: t.sources }));
    const body = { question: form.question.value, filters: filtersOf(form), stream: true };
    if (form.method.value) body.method = form.method.value;
    let started = false;
    try {
      const response = await fetch('/v1/ask', {
        method: 'POST', credentials: 'omit', body: JSON.stringify(body),
        headers: headers({ 'content-type': 'application/json', accept: 'text/event-stream' }),
      });
      if (!response.ok) {
        let detail = response.statusText;
        try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
        throw new Error(detail);
      }
      for await (const [name, data] of serverEvents(response)) {
        const d = JSON.parse(data);
        if (name === 'token') {
          if (!started) { answer.textContent = ''; started = true; }
          answer.append(d.text);
          announce(d.text);
        } else if (name === 'citations') {
          answer.textContent = d.answer;
          drawSources(sources, d);
        } else if (name === 'error') {
          throw new Error(d.detail);
        }
      }
    } catch (err) {
      answer.replaceChildren(el('p', { class: 'error', role: 'alert', text: err.message }));
    } finally {
      answer.setAttribute('aria-busy', 'false');
      button.disabled = false;
    }
  });
  form.question.focus();
}
function drawSources(aside, a) {
  aside.replaceChildren(el('h2', { id: 'sources-title', text: a.abstained ? t.closest : t.sources }));
  if (a.abstained) aside.append(el('p', { class: 'muted', text: t.abstained }));
  aside.append(el('ol', {}, ...a.citations.map((c) => el('li', { value: String(c.n) },
    el('div', { class: 'label', text: c.label + (c.page ? ` (${t.page} ${c.page})` : '') }),
    c.quote ? el('blockquote', { 'aria-label': t.quote, text: c.quote }) : null,
    el('p', { class: 'muted validity', text: validity(c.in_force_from, c.in_force_until) }),
    citeActions(c.label, c.url, c.norm_id, c.passage_id, c.in_force_from)))));
}

function signInView() {
  const form = el('form', { class: 'stack' },
    field(t.kindOf, select('kind', [['key', t.apiKey], ['token', t.token]])),
    field(t.credential, el('input', { type: 'password', name: 'value', required: true, autocomplete: 'off' })),
    el('button', { type: 'submit', text: t.enter }));
  const message = el('p', { role: 'alert', class: 'error' });
  main.replaceChildren(el('h1', { text: t.signin }), form, message);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, JSON.stringify({ kind: form.kind.value, value: form.value.value.trim() }));
    try {
      me = await call('/v1/me');
    } catch (_) {
      sessionStorage.removeItem(KEY);
      message.textContent = t.badCredential;
      return;
    }
    await whoAmI();
    location.hash = '#search';
  });
  form.value.focus();
}

async function adminView() {
  if (!me.admin) {
    main.replaceChildren(el('h1', { text: t.admin }), el('p', { class: 'error', role: 'alert', text: t.needAdmin }),
      el('a', { href: '#signin', text: t.signin }));
    return;
  }
  const upload = el('form', { class: 'filters', id: 'upload' },
    field(t.files, el('input', { type: 'file', name: 'file', multiple: true, required: true }), true),
    field(t.jurisdiction, el('input', { name: 'jurisdiction', size: '4', placeholder: 'cl' })),
    field(t.access, select('access', [['public', t.publicLevel], ['internal', t.internalLevel], ['restricted', t.restrictedLevel]])),
    field(t.tenant, el('input', { name: 'tenant', size: '12' })),
    el('label', {}, t.redact, el('input', { type: 'checkbox', name: 'redact_pii' })),
    el('button', { type: 'submit', text: t.send }));
  const uploadStatus = el('p', { role: 'status' });
  const jobs = el('div', { id: 'jobs' });
  const clients = el('div', { id: 'clients' });
  const audit = el('p', { id: 'audit-result', role: 'status' });
  main.replaceChildren(el('h1', { text: t.admin }),
    el('h2', { text: t.upload }), upload, uploadStatus,
    el('h2', { text: t.jobs }), el('button', { type: 'button', class: 'quiet', text: t.reload, onclick: () => drawJobs(jobs) }), jobs,
    el('h2', { text: t.clients }), clients,
    el('h2', { text: t.audit }), el('button', { type: 'button', id: 'verify', text: t.verify, onclick: () => verify(audit) }), audit);
  upload.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData();
    for (const f of upload.file.files) data.append('file', f, f.name);
    if (upload.jurisdiction.value) data.append('jurisdiction', upload.jurisdiction.value);
    data.append('access', upload.access.value);
    if (upload.tenant.value) data.append('tenant', upload.tenant.value);
    if (upload.redact_pii.checked) data.append('redact_pii', 'true');
    try {
      const job = await call('/v1/documents', { method: 'POST', body: data });
      uploadStatus.textContent = `#${job.job_id}: ${job.files.join(', ')}`;
      upload.reset();
      watchJobs(jobs);
    } catch (err) { uploadStatus.textContent = err.message; }
  });
  await Promise.all([drawJobs(jobs), drawClients(clients)]);
}

let watching = null;
function watchJobs(box) {
  clearTimeout(watching);
  drawJobs(box).then((running) => { if (running && location.hash === '#admin') watching = setTimeout(() => watchJobs(box), 1000); });
}
async function drawJobs(box) {
  try {
    const { jobs } = await call('/v1/jobs');
    const row = (j) => el('tr', {}, ...[`#${j.id}`, j.status, j.started_at, j.files, j.norms, j.passages,
      j.failures.map((f) => `${f.file}: ${f.reason}`).join('; ') + (j.error || '')].map((v) => el('td', { text: String(v) })));
    box.replaceChildren(el('table', {}, el('thead', {}, el('tr', {}, ...['#', t.status, t.started, t.files, t.norms, t.passages, t.failures]
      .map((h) => el('th', { scope: 'col', text: h })))), el('tbody', {}, ...jobs.map(row))));
    return jobs.some((j) => j.status === 'running');
  } catch (err) {
    box.replaceChildren(el('p', { class: 'error', text: err.message }));
    return false;
  }
}
async function drawClients(box) {
  try {
    const { clients } = await call('/v1/clients');
    const row = (c) => el('tr', {}, ...[c.name, c.role, c.tenant || '', c.clearance, c.created_at].map((v) => el('td', { text: v })),
      el('td', {}, c.revoked_at ? el('span', { text: `${t.revoked} ${c.revoked_at}` })
        : el('button', { type: 'button', class: 'quiet', 'aria-label': `${t.revoke} ${c.name}`, text: t.revoke, onclick: async () => {
          if (!confirm(`${t.confirmRevoke} ${c.name}?`)) return;
          try { await call('/v1/clients/' + encodeURIComponent(c.name), { method: 'DELETE' }); } catch (err) { announce(err.message); }
          drawClients(box);
        } })));
    box.replaceChildren(el('table', {}, el('thead', {}, el('tr', {}, ...[t.name, t.role, t.tenant, t.clearance, t.created, t.status]
      .map((h) => el('th', { scope: 'col', text: h })))), el('tbody', {}, ...clients.map(row))));
  } catch (err) {
    box.replaceChildren(el('p', { class: 'error', text: err.message }));
  }
}
async function verify(out) {
  out.textContent = t.working;
  try {
    const v = await call('/v1/audit/verify');
    out.replaceChildren(el('span', { class: v.intact ? 'ok' : 'bad', text: v.intact ? t.intact : t.broken }),
      ` · ${v.records} ${t.records} · ${t.head} ${v.head.slice(0, 16)}…`, ...v.problems.map((p) => el('div', { text: p })));
  } catch (err) { out.textContent = err.message; }
}

async function route() {
  const [view, a, b, c] = location.hash.slice(1).split('/');
  drawNav();
  clearTimeout(watching);
  document.title = `Cabildo — ${t[view] || t.search}`;
  try {
    if (view === 'norm' && a) await normView(decodeURIComponent(a), b ? decodeURIComponent(b) : null, c || null);
    else if (view === 'ask') await askView();
    else if (view === 'admin') await adminView();
    else if (view === 'signin') signInView();
    else await searchView();
  } catch (err) {
    main.replaceChildren(el('p', { class: 'error', role: 'alert', text: err.message }));
  }
  if (view === 'admin') watchJobs(document.getElementById('jobs') || el('div'));
}

document.getElementById('skip').textContent = t.skip;
window.addEventListener('hashchange', route);
whoAmI().then(route);
