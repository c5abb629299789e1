// crosscut demo page: WebSocket chat and live SSE metrics.
// Runs under `Content-Security-Policy: default-src 'self'`: no inline code, no eval, no innerHTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  // ---- Chat -------------------------------------------------------------------------------

  // The server HTML-escapes `& < > " '`. We insert text with textContent, which is already safe,
  // so decode those entities first (in one pass, so `&amp;lt;` becomes `&lt;`, not `<`) and the
  // person sees exactly what was typed.
  const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', '#x27': "'", '#39': "'" };
  function decodeEntities(s) {
    return String(s).replace(/&(amp|lt|gt|quot|#x27|#39);/g, (_, name) => ENTITIES[name]);
  }

  const messages = $('messages');
  const form = $('chat-form');
  const username = $('username');
  const input = $('message');
  const sendButton = $('send');
  const chatError = $('chat-error');
  const chatStatus = $('chat-status');
  const MAX_SHOWN = 500;

  username.value = localStorage.getItem('crosscut.username') || '';

  function setStatus(el, label, on) {
    el.textContent = label;
    el.className = 'status ' + (on ? 'status-on' : 'status-off');
  }

  function showError(text) {
    chatError.textContent = text;
    chatError.hidden = !text;
  }

  function addMessage(msg) {
    const li = document.createElement('li');
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = new Date((msg.timestamp || 0) * 1000).toLocaleTimeString();
    li.appendChild(time);
    if (msg.message_type === 'System') {
      li.classList.add('system');
    } else {
      const user = document.createElement('span');
      user.className = 'user';
      user.textContent = decodeEntities(msg.username) + ':';
      user.title = String(msg.user_id);
      li.appendChild(user);
    }
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = decodeEntities(msg.content);
    li.appendChild(text);

    const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    messages.appendChild(li);
    while (messages.children.length > MAX_SHOWN) messages.removeChild(messages.firstChild);
    if (atBottom) messages.scrollTop = messages.scrollHeight;
  }

  function chatUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    // A token in the page's own query (`/?access_token=...`) is passed on: browsers cannot set
    // an Authorization header on a WebSocket.
    const token = new URLSearchParams(location.search).get('access_token');
    const query = token ? '?access_token=' + encodeURIComponent(token) : '';
    return scheme + '//' + location.host + '/ws/chat' + query;
  }

  let socket = null;
  let retryMs = 500;

  function connectChat() {
    const ws = new WebSocket(chatUrl());
    socket = ws;
    sendButton.disabled = true;
    ws.addEventListener('open', () => {
      retryMs = 500;
      sendButton.disabled = false;
      setStatus(chatStatus, 'chat: connected', true);
      showError('');
    });
    ws.addEventListener('message', (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (msg.type === 'error') {
        showError(msg.code + ': ' + msg.message);
      } else {
        addMessage(msg);
      }
    });
    ws.addEventListener('close', (event) => {
      sendButton.disabled = true;
      setStatus(chatStatus, 'chat: disconnected (' + event.code + ')', false);
      if (socket === ws) {
        setTimeout(connectChat, retryMs);
        retryMs = Math.min(retryMs * 2, 10000);
      }
    });
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = username.value.trim();
    const content = input.value;
    if (!name || !content.trim() || !socket || socket.readyState !== WebSocket.OPEN) return;
    localStorage.setItem('crosscut.username', name);
    socket.send(JSON.stringify({ username: name, content: content, message_type: 'Text' }));
    input.value = '';
    input.focus();
  });

  connectChat();

  // ---- Metrics ----------------------------------------------------------------------------

  const metricsStatus = $('metrics-status');
  const canvas = $('chart');
  const POINTS = 60;
  const cpu = [];
  const mem = [];

  function bytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return n.toFixed(i === 0 ? 0 : 1) + ' ' + units[i];
  }

  function duration(secs) {
    const h = Math.floor(secs / 3600);
    const m = Math.floor((secs % 3600) / 60);
    const s = secs % 60;
    return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + s + 's';
  }

  function cssVar(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }

  function drawChart() {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const pad = { left: 34, right: 8, top: 8, bottom: 8 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const y = (pct) => pad.top + plotH * (1 - Math.max(0, Math.min(100, pct)) / 100);
    const x = (i) => pad.left + (plotW * i) / (POINTS - 1);

    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = cssVar('--muted', '#6b7280');
    ctx.strokeStyle = cssVar('--line', '#e3e6eb');
    ctx.lineWidth = 1;
    for (const pct of [0, 25, 50, 75, 100]) {
      ctx.beginPath();
      ctx.moveTo(pad.left, y(pct));
      ctx.lineTo(width - pad.right, y(pct));
      ctx.stroke();
      ctx.fillText(pct + '%', 2, y(pct) + 4);
    }

    function line(values, color) {
      if (values.length < 1) return;
      const offset = POINTS - values.length;
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      values.forEach((v, i) => {
        if (i === 0) ctx.moveTo(x(offset + i), y(v));
        else ctx.lineTo(x(offset + i), y(v));
      });
      ctx.stroke();
    }
    line(cpu, cssVar('--cpu', '#2563eb'));
    line(mem, cssVar('--mem', '#db2777'));
  }

  function onMetrics(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    const m = data.metrics || {};
    const memPct = m.memory_total ? (100 * m.memory_used) / m.memory_total : 0;
    $('m-cpu').textContent = Number(m.cpu_usage || 0).toFixed(1) + ' %';
    $('m-mem').textContent = bytes(m.memory_used || 0) + ' / ' + bytes(m.memory_total || 0);
    $('m-rss').textContent = bytes(m.process_rss_bytes || 0);
    $('m-procs').textContent = String(m.process_count);
    $('m-uptime').textContent = duration(m.uptime || 0);
    $('m-conns').textContent = String(m.active_connections);
    $('m-reqs').textContent = String(m.requests_total);
    $('m-event').textContent = '#' + data.id;

    cpu.push(Number(m.cpu_usage || 0));
    mem.push(memPct);
    if (cpu.length > POINTS) cpu.shift();
    if (mem.length > POINTS) mem.shift();
    drawChart();
  }

  const source = new EventSource('/sse/metrics?interval_ms=1000');
  source.addEventListener('open', () => setStatus(metricsStatus, 'metrics: live', true));
  source.addEventListener('message', onMetrics);
  // EventSource reconnects by itself; only the status needs updating.
  source.addEventListener('error', () => setStatus(metricsStatus, 'metrics: reconnecting', false));
  window.addEventListener('resize', drawChart);
  drawChart();
})();
