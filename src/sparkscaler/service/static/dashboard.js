/*
 * sparkscaler dashboard. Plain JS and SVG, no dependencies: polls the API every 2 s and draws
 * the status, three charts, the decision log and the controls. Every string that comes from
 * the server is inserted as text (textContent, append of a string), never as HTML.
 *
 * Polling: GET /api/status; GET /api/observations?since=<newest time seen> appended to a
 * window of the last 30 min kept here; GET /api/decisions?limit=50 (1000 on the first poll),
 * kept by id over the same window for the charts.
 * Changes: PUT /api/mode, PUT /api/policy, POST /api/scale with `Authorization: Bearer`. The
 * token is asked once in #token-dialog and kept in sessionStorage; a 401 forgets it and asks
 * again; any other refusal shows the API's `detail` next to the control.
 *
 * Stable hooks for tests (element ids):
 *   connection            "updated HH:MM:SS", or why the service cannot be reached (class down)
 *   loop-error            shown when the loop's last iteration failed or the loop stopped
 *   status-mode           the mode: auto | recommend | manual
 *   status-policy         the policy's name (its parameters in the title)
 *   status-workers        ALIVE workers; status-workers-detail: the other states
 *   status-target, status-bounds, status-tasks ("running / pending"), status-sources (li each)
 *   status-last-decision  the last decision with its reason
 *   worker-table          <tbody>: one row per worker (id, state, cores, memory, busy)
 *   workers-chart         <svg data-points="N" data-last-workers="W">: N observations drawn,
 *                         W the newest one's ALIVE workers ("" before any)
 *   features-chart        <svg data-points="N">: cu, cs, mt, ma, bi, bo in %
 *   forecast-chart        <svg data-points="N" data-forecasts="F"> in forecast-box, which is
 *                         hidden, with forecast-note saying why, when nothing forecasts
 *   decision-log          <tbody>: one <tr data-id="…"> per decision, newest first
 *   mode-select, mode-apply, mode-message
 *   policy-select, policy-params (JSON), policy-apply, policy-message
 *   scale-input, scale-apply (enabled in manual mode only), scale-hint, scale-message
 *   token-dialog, token-input, token-submit, token-cancel, token-error, token-forget
 * Messages (mode-message, …) carry the class "ok" or "error".
 */
'use strict';

(() => {
  const POLL_MS = 2000;
  const WINDOW_S = 30 * 60;
  const TOKEN_KEY = 'sparkscaler.token';
  const FORECASTING = ['predictive', 'hybrid'];
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const state = {
    status: null,
    observations: [], // oldest first, within WINDOW_S of the newest
    lastTime: null, // time of the newest observation seen
    decisions: new Map(), // id -> decision, within the window
    recent: [], // the last poll's decisions, newest first
    shownMode: null,
    shownPolicy: null,
    logKey: '',
  };

  // ------------------------------------------------------------------ small helpers
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    node.append(...children.flat().filter((c) => c != null).map((c) => (c instanceof Node ? c : String(c))));
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value != null && value !== false) node.setAttribute(key, String(value));
    }
  }

  const pad = (n) => String(n).padStart(2, '0');

  function clock(t, seconds = true) {
    const d = new Date(t * 1000);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ''}`;
  }

  const fullTime = (t) => new Date(t * 1000).toLocaleString();

  function num(value, digits = 1) {
    if (value == null) return '–';
    return Number.isInteger(value) ? String(value) : value.toFixed(digits);
  }

  function say(node, text, kind) {
    node.textContent = text;
    node.className = `msg ${kind || ''}`;
  }

  async function getJSON(path) {
    const response = await fetch(path, { cache: 'no-store' });
    if (!response.ok) throw new Error(`${path.split('?')[0]} answered HTTP ${response.status}`);
    return response.json();
  }

  // ------------------------------------------------------------------ polling
  let timer = null;
  let polling = false;
  let pollAgain = false;

  async function poll() {
    if (polling) {
      pollAgain = true;
      return;
    }
    polling = true;
    clearTimeout(timer);
    try {
      const status = await getJSON('/api/status');
      await loadObservations(status);
      const decisions = await getJSON(`/api/decisions?limit=${state.decisions.size ? 50 : 1000}`);
      state.status = status;
      for (const d of decisions) state.decisions.set(d.id, d);
      state.recent = decisions.slice(0, 50);
      prune();
      render();
      setConnection(null);
    } catch (error) {
      setConnection(error);
    } finally {
      polling = false;
      timer = setTimeout(poll, pollAgain ? 0 : POLL_MS);
      pollAgain = false;
    }
  }

  const pollNow = () => {
    clearTimeout(timer);
    poll();
  };

  async function loadObservations(status) {
    let since = state.lastTime;
    if (since == null) {
      if (status.observed_at == null) return;
      since = Math.max(0, status.observed_at - WINDOW_S);
    }
    for (let page = 0; page < 20; page += 1) {
      const rows = await getJSON(`/api/observations?since=${since}&limit=1000`);
      for (const row of rows) {
        delete row.worker_detail; // not drawn; keeps the window small
        state.observations.push(row);
      }
      if (rows.length) since = state.lastTime = rows[rows.length - 1].time;
      if (rows.length < 1000) break;
    }
  }

  function prune() {
    if (state.lastTime == null) return;
    const cut = state.lastTime - WINDOW_S;
    const first = state.observations.findIndex((o) => o.time >= cut);
    state.observations.splice(0, first < 0 ? state.observations.length : first);
    for (const [id, d] of state.decisions) if (d.time < cut) state.decisions.delete(id);
  }

  function setConnection(error) {
    const node = $('connection');
    if (error) {
      node.textContent = `cannot reach the service (${error.message}); retrying`;
      node.className = 'connection down';
    } else {
      node.textContent = `updated ${clock(Date.now() / 1000)}`;
      node.className = 'connection';
    }
  }

  // ------------------------------------------------------------------ status
  function render() {
    renderStatus();
    renderControls();
    renderCharts();
    renderDecisionLog();
  }

  function renderStatus() {
    const s = state.status;
    const mode = $('status-mode');
    mode.textContent = s.mode;
    mode.className = `value mode-${s.mode}`;
    const policy = $('status-policy');
    policy.textContent = s.policy.name;
    policy.title = JSON.stringify(s.policy.params, null, 1);

    const byState = {};
    for (const w of s.workers) byState[w.state] = (byState[w.state] || 0) + 1;
    $('status-workers').textContent = String(byState.ALIVE || 0);
    const others = Object.entries(byState).filter(([k]) => k !== 'ALIVE');
    $('status-workers-detail').textContent = others.length
      ? others.map(([k, n]) => `${n} ${k.toLowerCase()}`).join(' · ')
      : `${s.workers.length} in all`;
    $('status-target').textContent = s.target == null ? '–' : String(s.target);
    $('status-bounds').textContent = `bounds ${s.bounds.min_workers}–${s.bounds.max_workers}, every ${num(s.interval_s)} s`;
    $('status-tasks').textContent = `${num(s.running_tasks)} / ${num(s.pending_tasks)}`;

    $('status-sources').replaceChildren(
      ...s.sources.map((src) => {
        const kind = src.healthy == null ? '' : src.healthy ? 'ok' : 'bad';
        const word = src.healthy == null ? 'not observed yet' : src.healthy ? 'healthy' : 'failing';
        return el(
          'li',
          { title: src.errors.join('\n') || null },
          el('span', { class: `dot ${kind}` }),
          `${src.name}: ${word}`,
          src.errors.length ? el('div', { class: 'errors' }, src.errors.join('; ')) : null,
        );
      }),
    );

    const last = $('status-last-decision');
    const d = s.last_decision;
    if (!d) {
      last.textContent = 'none yet';
    } else {
      last.replaceChildren(
        el('strong', null, `${clock(d.time)} ${d.policy || '(no policy)'}: ${d.action} ${d.current} → ${d.target}`),
        ` (${runText(d)}) `,
        el('span', { class: 'reason' }, d.reason),
        ...(d.error ? [el('span', { class: 'error' }, ` error: ${d.error}`)] : []),
      );
    }

    const banner = $('loop-error');
    const problems = [];
    if (s.loop_error) problems.push(`The control loop's last iteration failed: ${s.loop_error}`);
    if (!s.loop_running) problems.push('The control loop is not running.');
    banner.textContent = problems.join(' ');
    banner.hidden = problems.length === 0;

    $('worker-table').replaceChildren(
      ...(s.workers.length
        ? s.workers.map((w) =>
            el(
              'tr',
              null,
              el('td', { class: 'id' }, w.id),
              el('td', { class: 'nowrap' }, w.state),
              el('td', { class: 'num' }, w.cores),
              el('td', { class: 'num nowrap' }, w.memory_mb >= 1024 ? `${num(w.memory_mb / 1024)} GiB` : `${w.memory_mb} MiB`),
              el('td', null, w.busy ? 'yes' : 'no'),
            ),
          )
        : [el('tr', null, el('td', { colspan: 5, class: 'muted' }, 'no workers observed'))]),
    );
  }

  // ------------------------------------------------------------------ controls
  function renderControls() {
    const s = state.status;
    if (state.shownMode !== s.mode) {
      $('mode-select').value = s.mode;
      if (s.mode === 'manual' || $('scale-input').value === '') {
        $('scale-input').value = String(s.target ?? s.workers.filter((w) => w.state === 'ALIVE').length);
      }
      state.shownMode = s.mode;
    }

    const select = $('policy-select');
    const names = s.policies.map((p) => p.name);
    if ([...select.options].map((o) => o.value).join() !== names.join()) {
      select.replaceChildren(...names.map((n) => el('option', { value: n }, n)));
      state.shownPolicy = null;
    }
    const current = JSON.stringify([s.policy.name, s.policy.params]);
    if (state.shownPolicy !== current) {
      select.value = s.policy.name;
      $('policy-params').value = JSON.stringify(s.policy.params, null, 2);
      state.shownPolicy = current;
    }

    const manual = s.mode === 'manual';
    const input = $('scale-input');
    input.disabled = !manual;
    input.min = String(s.bounds.min_workers);
    input.max = String(s.bounds.max_workers);
    $('scale-apply').disabled = !manual;
    $('scale-hint').textContent = manual
      ? `Between ${s.bounds.min_workers} and ${s.bounds.max_workers} workers; removals are graceful.`
      : 'Only in manual mode (switch the mode above).';
  }

  function paramsFor(name) {
    const s = state.status;
    if (name === s.policy.name) return s.policy.params;
    const choice = s.policies.find((p) => p.name === name);
    return choice ? choice.defaults : {};
  }

  // ------------------------------------------------------------------ token and changes
  let tokenWaiter = null;
  let changing = false;

  function askToken(message) {
    const dialog = $('token-dialog');
    const error = $('token-error');
    error.textContent = message;
    error.hidden = !message;
    $('token-input').value = '';
    if (!dialog.open) dialog.showModal();
    $('token-input').focus();
    return new Promise((resolve) => {
      tokenWaiter = resolve;
    });
  }

  function finishToken(value) {
    const waiter = tokenWaiter;
    tokenWaiter = null;
    if ($('token-dialog').open) $('token-dialog').close();
    if (waiter) waiter(value);
  }

  function updateTokenLink() {
    $('token-forget').hidden = !sessionStorage.getItem(TOKEN_KEY);
  }

  function refusal(status, body) {
    const detail = body && typeof body.detail === 'string' ? body.detail : JSON.stringify(body && body.detail);
    return `Refused (HTTP ${status}): ${detail || 'no detail'}`;
  }

  /** Send a change with the token, asking for it when there is none or it was refused. */
  async function change(method, path, body, message) {
    if (changing) {
      say(message, 'Another change is in progress; try again in a moment.', 'error');
      return null;
    }
    changing = true;
    say(message, 'Sending…', '');
    try {
      let why = '';
      for (;;) {
        let token = sessionStorage.getItem(TOKEN_KEY);
        if (!token) {
          token = await askToken(why);
          if (!token) {
            say(message, 'Not changed: a change needs the service token.', 'error');
            return null;
          }
          sessionStorage.setItem(TOKEN_KEY, token);
        }
        let response;
        try {
          response = await fetch(path, {
            method,
            headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
            body: JSON.stringify(body),
          });
        } catch (error) {
          say(message, `The request failed: ${error.message}`, 'error');
          return null;
        }
        const answer = await response.json().catch(() => null);
        if (response.status === 401) {
          sessionStorage.removeItem(TOKEN_KEY);
          why = 'The service refused that token; enter it again.';
          continue;
        }
        if (!response.ok) {
          say(message, refusal(response.status, answer), 'error');
          return null;
        }
        return answer;
      }
    } finally {
      changing = false;
      updateTokenLink();
    }
  }

  function wireControls() {
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const token = $('token-input').value.trim();
      const error = $('token-error');
      if (!/^[\x21-\x7e]+$/.test(token)) {
        error.textContent = token ? 'A token has only visible ASCII characters.' : 'Enter the token.';
        error.hidden = false;
        return;
      }
      finishToken(token);
    });
    $('token-cancel').addEventListener('click', () => finishToken(null));
    $('token-dialog').addEventListener('cancel', (event) => {
      event.preventDefault();
      finishToken(null);
    });
    $('token-dialog').addEventListener('close', () => finishToken(null));
    $('token-forget').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      updateTokenLink();
    });

    $('mode-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const message = $('mode-message');
      const answer = await change('PUT', '/api/mode', { mode: $('mode-select').value }, message);
      if (answer) {
        say(message, `Mode set to ${answer.mode}.`, 'ok');
        pollNow();
      }
    });

    $('policy-select').addEventListener('change', () => {
      $('policy-params').value = JSON.stringify(paramsFor($('policy-select').value), null, 2);
    });
    $('policy-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const message = $('policy-message');
      let params;
      try {
        params = JSON.parse($('policy-params').value.trim() || '{}');
      } catch (error) {
        say(message, `The parameters are not valid JSON: ${error.message}`, 'error');
        return;
      }
      if (params === null || typeof params !== 'object' || Array.isArray(params)) {
        say(message, 'The parameters must be a JSON object, like {"idle_timeout_s": 30}.', 'error');
        return;
      }
      const answer = await change('PUT', '/api/policy', { name: $('policy-select').value, params }, message);
      if (answer) {
        say(message, `Switched to ${answer.name}; it decides from the next iteration on.`, 'ok');
        pollNow();
      }
    });

    $('scale-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const message = $('scale-message');
      const workers = Number($('scale-input').value);
      if ($('scale-input').value.trim() === '' || !Number.isInteger(workers)) {
        say(message, 'Enter a whole number of workers.', 'error');
        return;
      }
      const answer = await change('POST', '/api/scale', { workers }, message);
      if (answer) {
        const text = `${answer.action}: ${answer.current} → ${answer.target}. ${answer.reason}`;
        say(message, answer.error ? `${text} Error: ${answer.error}` : text, answer.error ? 'error' : 'ok');
        pollNow();
      }
    });
  }

  // ------------------------------------------------------------------ charts
  const WORKER_SERIES = {
    workers: { name: 'workers (alive)', color: '#2563eb', width: 2.2, step: true },
    target: { name: 'target', color: '#111827', width: 1.5, step: true, dash: '6 4' },
    recommended: { name: 'recommended (dry run)', color: '#9ca3af', dots: true },
    running: { name: 'running tasks', color: '#16a34a', width: 1.3, axis: 'right' },
    pending: { name: 'pending tasks', color: '#ea580c', width: 1.3, axis: 'right' },
  };
  const FEATURES = [
    ['cu', 'CPU user', '#2563eb', null],
    ['cs', 'CPU system', '#2563eb', '5 3'],
    ['mt', 'memory, transformations', '#16a34a', null],
    ['ma', 'memory, actions', '#16a34a', '5 3'],
    ['bi', 'network in', '#ea580c', null],
    ['bo', 'network out', '#ea580c', '5 3'],
  ];

  function renderCharts() {
    const obs = state.observations;
    const s = state.status;
    const t1 = state.lastTime ?? s.observed_at ?? Date.now() / 1000;
    let t0 = obs.length ? Math.max(obs[0].time, t1 - WINDOW_S) : t1 - 60;
    t0 = Math.min(t0, t1 - 60);
    const decisions = [...state.decisions.values()].sort((a, b) => a.time - b.time || a.id - b.id);

    // (a) workers and target (left), running and pending tasks (right)
    const series = [
      { ...WORKER_SERIES.workers, points: obs.map((o) => [o.time, o.workers]) },
      {
        ...WORKER_SERIES.target,
        points: decisions.filter((d) => !d.dry_run && d.target != null).map((d) => [d.time, d.target]),
        hold: s.mode !== 'recommend',
      },
    ];
    const recommended = decisions.filter((d) => d.dry_run && d.target != null);
    if (recommended.length) series.push({ ...WORKER_SERIES.recommended, points: recommended.map((d) => [d.time, d.target]) });
    series.push(
      { ...WORKER_SERIES.running, points: obs.map((o) => [o.time, o.running_tasks]) },
      { ...WORKER_SERIES.pending, points: obs.map((o) => [o.time, o.pending_tasks]) },
    );
    const workersSvg = $('workers-chart');
    drawChart(workersSvg, {
      t0, t1, series,
      left: { label: 'workers', integer: true, atLeast: s.bounds.max_workers },
      right: { label: 'tasks', integer: true, atLeast: 1 },
    });
    renderLegend($('workers-legend'), series);
    workersSvg.dataset.points = String(obs.length);
    workersSvg.dataset.lastWorkers = obs.length && obs[obs.length - 1].workers != null ? String(obs[obs.length - 1].workers) : '';

    // (b) the paper's six features
    const features = FEATURES.map(([key, label, color, dash]) => ({
      name: `${key} ${label}`, color, dash, width: 1.5, unit: '%',
      points: obs.map((o) => [o.time, o[key]]),
    }));
    const featureMax = Math.max(0, ...features.flatMap((f) => f.points.map((p) => p[1] ?? 0)));
    const featuresSvg = $('features-chart');
    drawChart(featuresSvg, {
      t0, t1, series: features,
      left: { label: '%', atLeast: [10, 25, 50, 100].find((m) => m >= featureMax) ?? featureMax },
    });
    renderLegend($('features-legend'), features);
    featuresSvg.dataset.points = String(obs.length);

    // (c) forecast vs actual, for the policies that forecast
    const forecasts = decisions.filter((d) => d.forecast_tasks != null);
    const shown = FORECASTING.includes(s.policy.name) || forecasts.length > 0;
    const forecastSvg = $('forecast-chart');
    const note = $('forecast-note');
    $('forecast-box').hidden = !shown;
    if (!shown) {
      note.textContent = `Hidden: the policy ${s.policy.name} makes no forecast; only ${FORECASTING.join(' and ')} record one (forecast_tasks).`;
      note.hidden = false;
      forecastSvg.dataset.points = '0';
      forecastSvg.dataset.forecasts = '0';
      return;
    }
    note.textContent = forecasts.length
      ? ''
      : 'No forecast in the last 30 min yet: the forecaster needs enough history (min_history_s).';
    note.hidden = forecasts.length > 0;
    const pair = [
      {
        name: 'actual running + pending tasks', color: '#111827', width: 1.5,
        points: obs.map((o) => [o.time, o.running_tasks == null || o.pending_tasks == null ? null : o.running_tasks + o.pending_tasks]),
      },
      {
        name: 'forecast peak (forecast_tasks)', color: '#9333ea', width: 1.5, dash: '5 3', dots: true, line: true,
        points: forecasts.map((d) => [d.time, d.forecast_tasks]),
      },
    ];
    drawChart(forecastSvg, { t0, t1, series: pair, left: { label: 'tasks', atLeast: 1 } });
    renderLegend($('forecast-legend'), pair);
    forecastSvg.dataset.points = String(obs.length);
    forecastSvg.dataset.forecasts = String(forecasts.length);
  }

  /** A rounded step for about `parts` ticks up to `max`, and the axis' top. */
  function scale(max, integer, parts = 4) {
    const raw = Math.max(max, integer ? 1 : 1e-9) / parts;
    const power = 10 ** Math.floor(Math.log10(raw));
    let step = 10 * power;
    for (const f of [1, 2, 2.5, 5, 10]) {
      const candidate = Number((f * power).toPrecision(12));
      if (candidate >= raw && (!integer || Number.isInteger(candidate))) {
        step = candidate;
        break;
      }
    }
    if (integer) step = Math.max(1, Math.round(step));
    return { step, top: Math.max(step, Math.ceil(max / step - 1e-9) * step) };
  }

  const TIME_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];

  function drawChart(svg, { t0, t1, series, left, right }) {
    const width = Math.max(320, svg.clientWidth || svg.parentNode.clientWidth || 640);
    const height = svg.clientHeight || 240;
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    const m = { l: 50, r: right ? 50 : 18, t: 12, b: 26 };
    const pw = width - m.l - m.r;
    const ph = height - m.t - m.b;
    const x = (t) => m.l + ((t - t0) / (t1 - t0)) * pw;
    const axisOf = (spec, side) => {
      const values = series.filter((s) => (s.axis || 'left') === side).flatMap((s) => s.points.map((p) => p[1])).filter((v) => v != null);
      const sc = scale(Math.max(spec.atLeast || 0, ...values), spec.integer);
      const room = sc.top * 1.05; // lines at the top stay clear of the frame
      return { ...sc, y: (v) => m.t + ph - (v / room) * ph };
    };
    const L = axisOf(left, 'left');
    const R = right ? axisOf(right, 'right') : null;
    svg.replaceChildren();

    const clipId = `${svg.id}-clip`;
    const clip = svgEl('clipPath', { id: clipId });
    clip.append(svgEl('rect', { x: m.l, y: m.t - 3, width: pw, height: ph + 6 }));
    const defs = svgEl('defs');
    defs.append(clip);
    svg.append(defs);

    const text = (content, attrs) => {
      const node = svgEl('text', attrs);
      node.textContent = content;
      svg.append(node);
      return node;
    };
    // y grid and ticks
    for (let v = 0; v <= L.top + 1e-9; v += L.step) {
      const y = L.y(v);
      svg.append(svgEl('line', { class: 'grid', x1: m.l, x2: m.l + pw, y1: y, y2: y }));
      text(num(Number(v.toPrecision(12)), 1), { class: 'tick', x: m.l - 6, y: y + 4, 'text-anchor': 'end' });
    }
    if (R) {
      for (let v = 0; v <= R.top + 1e-9; v += R.step) {
        text(num(Number(v.toPrecision(12)), 1), { class: 'tick', x: m.l + pw + 6, y: R.y(v) + 4 });
      }
    }
    text(left.label, {
      class: 'axis-label', transform: `translate(12 ${m.t + ph / 2}) rotate(-90)`, 'text-anchor': 'middle',
    });
    if (R) {
      text(right.label, {
        class: 'axis-label', transform: `translate(${width - 8} ${m.t + ph / 2}) rotate(90)`, 'text-anchor': 'middle',
      });
    }
    // time axis
    const span = t1 - t0;
    const step = TIME_STEPS.find((s) => span / s <= pw / 80) || 7200;
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const xt = x(t);
      svg.append(svgEl('line', { class: 'grid', x1: xt, x2: xt, y1: m.t, y2: m.t + ph }));
      text(clock(t, step < 60), { class: 'tick', x: xt, y: m.t + ph + 17, 'text-anchor': 'middle' });
    }
    svg.append(svgEl('line', { class: 'domain', x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph }));

    // the series
    const plot = svgEl('g', { 'clip-path': `url(#${clipId})` });
    for (const s of series) {
      const y = s.axis === 'right' ? R.y : L.y;
      const pts = s.points.filter((p) => p[0] >= t0 - 1e-6 || s.step);
      if (!s.dots || s.line) {
        let d = '';
        let open = false;
        for (const [t, v] of pts) {
          if (v == null) {
            open = false;
            continue;
          }
          const px = x(Math.max(t, t0)).toFixed(1);
          const py = y(v).toFixed(1);
          d += !open ? `M${px} ${py}` : s.step ? `H${px}V${py}` : `L${px} ${py}`;
          open = true;
        }
        const lastPoint = pts.filter((p) => p[1] != null).at(-1);
        if (s.hold && lastPoint && lastPoint[0] < t1) d += `H${x(t1).toFixed(1)}`;
        if (d) {
          plot.append(svgEl('path', {
            d, fill: 'none', stroke: s.color, 'stroke-width': s.width || 1.5, 'stroke-dasharray': s.dash,
            'stroke-linejoin': 'round',
          }));
        }
      }
      // Dots mark the points of a sparse series; a dense one with a line is clearer without.
      if (s.dots && !(s.line && pts.length > 120)) {
        const r = pts.length > 120 ? 1.8 : 2.5;
        for (const [t, v] of pts) {
          if (v != null) plot.append(svgEl('circle', { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r, fill: s.color }));
        }
      }
    }
    svg.append(plot);

    if (!series.some((s) => s.points.some((p) => p[1] != null))) {
      text('waiting for observations…', { class: 'empty', x: m.l + pw / 2, y: m.t + ph / 2, 'text-anchor': 'middle' });
    }
    const cursor = svgEl('line', { class: 'cursor', y1: m.t, y2: m.t + ph, visibility: 'hidden' });
    svg.append(cursor);
    svg.chart = { t0, t1, m, pw, width, series, cursor };
  }

  function renderLegend(list, series) {
    list.replaceChildren(
      ...series.map((s) => {
        const swatch = svgEl('svg', { viewBox: '0 0 22 10', 'aria-hidden': 'true' });
        if (!s.dots || s.line) {
          swatch.append(svgEl('line', { x1: 1, x2: 21, y1: 5, y2: 5, stroke: s.color, 'stroke-width': 2, 'stroke-dasharray': s.dash ? '4 2' : null }));
        }
        if (s.dots) swatch.append(svgEl('circle', { cx: 11, cy: 5, r: 3, fill: s.color }));
        return el('li', null, swatch, s.name);
      }),
    );
  }

  /** The value of a series at time t: the last point at or before t. */
  function valueAt(points, t) {
    let found = null;
    for (const p of points) {
      if (p[0] > t) break;
      if (p[1] != null) found = p;
    }
    return found;
  }

  function wireHover(svg) {
    const tip = $('chart-tip');
    svg.addEventListener('mousemove', (event) => {
      const c = svg.chart;
      if (!c) return;
      const box = svg.getBoundingClientRect();
      const px = ((event.clientX - box.left) / box.width) * c.width;
      if (px < c.m.l || px > c.m.l + c.pw) {
        c.cursor.setAttribute('visibility', 'hidden');
        tip.hidden = true;
        return;
      }
      const t = c.t0 + ((px - c.m.l) / c.pw) * (c.t1 - c.t0);
      c.cursor.setAttribute('x1', px);
      c.cursor.setAttribute('x2', px);
      c.cursor.setAttribute('visibility', 'visible');
      const rows = c.series.map((s) => {
        const p = valueAt(s.points, t);
        return el('div', null, el('span', { class: 'swatch', style: `background:${s.color}` }),
          `${s.name}: ${p ? num(p[1]) + (s.unit || '') : '–'}`);
      });
      tip.replaceChildren(el('div', null, el('strong', null, clock(t))), ...rows);
      tip.hidden = false;
      const left = event.clientX + 14 + tip.offsetWidth > window.innerWidth ? event.clientX - tip.offsetWidth - 14 : event.clientX + 14;
      tip.style.left = `${left}px`;
      tip.style.top = `${event.clientY + 12}px`;
    });
    svg.addEventListener('mouseleave', () => {
      if (svg.chart) svg.chart.cursor.setAttribute('visibility', 'hidden');
      tip.hidden = true;
    });
  }

  // ------------------------------------------------------------------ decision log
  /** Whether a decision was carried out: dry run, acted, not acted, or no change to make. */
  function runText(d) {
    if (d.dry_run) return 'dry run';
    if (d.acted) return 'acted';
    return d.action === 'none' || d.action === 'hold' ? 'no change' : 'not acted';
  }

  function renderDecisionLog() {
    const key = state.recent.map((d) => d.id).join(',');
    if (key === state.logKey) return;
    state.logKey = key;
    const rows = state.recent.map((d) => {
      const sizes = `${num(d.current)} → ${num(d.target)}${d.wanted != null && d.wanted !== d.target ? ` (wanted ${d.wanted})` : ''}`;
      return el(
        'tr',
        { 'data-id': d.id },
        el('td', { title: fullTime(d.time) }, clock(d.time)),
        el('td', null, d.policy || '–'),
        el('td', { class: `action-${d.action}` }, d.action),
        el('td', null, sizes),
        el('td', { class: d.dry_run ? 'muted' : null }, runText(d)),
        el('td', null, d.reason),
        el('td', { class: 'error' }, d.error || ''),
      );
    });
    $('decision-log').replaceChildren(
      ...(rows.length ? rows : [el('tr', null, el('td', { colspan: 7, class: 'muted' }, 'no decisions yet'))]),
    );
  }

  // ------------------------------------------------------------------ start
  function start() {
    wireControls();
    for (const id of ['workers-chart', 'features-chart', 'forecast-chart']) wireHover($(id));
    let resizing = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => state.status && renderCharts(), 150);
    });
    updateTokenLink();
    poll();
  }

  start();
})();
