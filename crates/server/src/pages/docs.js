// The API reference page: lists /openapi.json's operations and schemas (no CDN, no inline script).
fetch('/openapi.json').then(r => r.json()).then(doc => {
  const ops = document.getElementById('ops'); ops.textContent = '';
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const div = document.createElement('div'); div.className = 'op';
      const head = document.createElement('div');
      const m = document.createElement('span'); m.className = 'm'; m.textContent = method;
      const p = document.createElement('code'); p.textContent = path;
      head.append(m, p); div.append(head);
      const d = document.createElement('p'); d.textContent = op.description || op.summary || ''; div.append(d);
      const codes = document.createElement('p');
      codes.textContent = 'Responses: ' + Object.entries(op.responses || {}).map(([c, r]) => c + ' ' + (r.description || '')).join(' · ');
      div.append(codes); ops.append(div);
    }
  }
  const schemas = document.getElementById('schemas');
  for (const [name, schema] of Object.entries((doc.components || {}).schemas || {})) {
    const h = document.createElement('h3'); h.textContent = name;
    const pre = document.createElement('pre'); pre.textContent = JSON.stringify(schema, null, 2);
    schemas.append(h, pre);
  }
});
