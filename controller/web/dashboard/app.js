// kvrecover dashboard: the paper's figure 2, live.
//
// The controller pushes its whole state over the /ws WebSocket on connect
// and after every change; this script redraws the page from it. Every piece
// of data goes into the page through textContent or a CSSOM property, never
// through innerHTML, so names from the cluster cannot inject markup.
(function () {
  'use strict';

  var state = null;
  var updates = 0;
  // The controller's clock minus ours, from the last state's generatedAt:
  // countdowns run on the controller's time, whatever this machine's says.
  var skewMs = 0;
  // The countdown cells on the page, each with its incident.
  var countdowns = [];
  var retryMs = 1000;
  var RETRY_MAX_MS = 10000;
  // recover_result_name(): how each decision is coloured.
  var DECISION_CLASS = { Recovered: 'ok', DryRun: 'info', NoEligibleCandidate: 'bad' };

  // el('td', 'num', '0.6667') -> <td class="num">0.6667</td>
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function add(parent, child) {
    parent.appendChild(child);
    return child;
  }

  function fmtScore(v) {
    return typeof v === 'number' && isFinite(v) ? v.toFixed(4) : '\u2014';
  }

  function fmtNum(v) {
    return typeof v === 'number' && isFinite(v) ? String(Math.round(v * 10000) / 10000) : '\u2014';
  }

  function fmtTime(s) {
    if (!s) return '\u2014';
    var d = new Date(s);
    return isNaN(d.getTime()) ? String(s) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  // A stable colour per category, so "database" looks the same everywhere.
  function hue(name) {
    var h = 0;
    for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) % 360;
    return h;
  }

  function colour(name) {
    return 'hsl(' + hue(name) + ', 55%, 55%)';
  }

  function badge(text, cls, title) {
    var b = el('span', 'badge' + (cls ? ' ' + cls : ''), text);
    if (title) b.title = title;
    return b;
  }

  // A horizontal bar for a score in 0..1, with the threshold marked.
  function scoreBar(score, threshold, eligible) {
    var wrap = el('div', 'scorebar');
    var fill = add(wrap, el('div', 'scorefill' + (eligible ? ' ok' : ' no')));
    fill.style.width = Math.max(0, Math.min(1, score || 0)) * 100 + '%';
    if (typeof threshold === 'number') {
      var t = add(wrap, el('div', 'threshold'));
      t.style.left = Math.max(0, Math.min(1, threshold)) * 100 + '%';
      t.title = 'threshold ' + fmtNum(threshold);
    }
    return wrap;
  }

  // Stacked bars of the weight each category contributed, scaled to max.
  function contributionBars(contrib, max) {
    var wrap = el('div', 'contrib');
    var keys = Object.keys(contrib || {}).sort();
    var bar = add(wrap, el('div', 'stack'));
    var legend = add(wrap, el('div', 'legend'));
    keys.forEach(function (k) {
      var w = Number(contrib[k]) || 0;
      var seg = add(bar, el('div', 'seg'));
      seg.style.width = (max > 0 ? (w / max) * 100 : 0) + '%';
      seg.style.backgroundColor = colour(k);
      seg.title = k + ' ' + fmtNum(w);
      var item = add(legend, el('span', w > 0 ? 'item' : 'item zero'));
      var sw = add(item, el('span', 'swatch'));
      sw.style.backgroundColor = colour(k);
      add(item, el('span', 'cat', k));
      add(item, el('span', 'w', fmtNum(w)));
    });
    if (!keys.length) add(legend, el('span', 'none', 'nothing in common'));
    return wrap;
  }

  function renderMembers(p) {
    var sec = el('section', 'members');
    add(sec, el('h3', null, 'Spec pool ' + (p.pool || '') + ' (' + (p.poolSize || 0) + ')'));
    var list = add(sec, el('ul', 'chips'));
    (p.members || []).forEach(function (m) {
      var li = add(list, el('li', 'chip' + (m.hasTemplate ? '' : ' notemplate')));
      li.dataset.member = m.name;
      add(li, el('span', 'name', m.name));
      if (m.vm && m.vm !== m.name) add(li, el('span', 'vm', 'describes ' + m.vm));
      if (m.error) {
        li.className += ' invalid';
        add(li, badge('invalid', 'bad', m.error));
        add(li, el('span', 'err', m.error));
      } else if (!m.hasTemplate) {
        add(li, badge('no template', 'warn', 'scored, never selected (NoTemplate)'));
      }
    });
    if (!(p.members || []).length) add(sec, el('p', 'empty', 'The pool is empty.'));
    return sec;
  }

  function renderProtected(p) {
    var sec = el('section', 'protected');
    var vms = p.protected || [];
    var risky = vms.filter(function (v) { return !v.eligible; }).length;
    var h = add(sec, el('h3', null, 'Protected VMs (' + vms.length + ')'));
    if (risky) add(h, badge(risky + ' without an eligible substitute', 'bad'));
    if (!vms.length) {
      add(sec, el('p', 'empty', 'No VM matches this policy\'s selector.'));
      return sec;
    }
    var table = add(sec, el('table', 'grid'));
    var head = add(add(table, el('thead')), el('tr'));
    ['VM', 'Phase', 'Best substitute', 'Score', ''].forEach(function (t) { add(head, el('th', null, t)); });
    var body = add(table, el('tbody'));
    vms.forEach(function (v) {
      var tr = add(body, el('tr', v.eligible ? 'safe' : 'at-risk'));
      tr.dataset.vm = v.vm;
      add(tr, el('td', 'name', v.vm));
      add(tr, el('td', null, v.phase || ''));
      add(tr, el('td', 'name', v.best || '\u2014'));
      var sc = add(tr, el('td', 'score'));
      add(sc, el('span', 'num', fmtScore(v.score)));
      add(sc, scoreBar(v.score, p.threshold, v.eligible));
      add(add(tr, el('td')), v.eligible ? badge('recoverable', 'ok') : badge('no eligible substitute', 'bad'));
    });
    return sec;
  }

  function renderRanking(r, threshold) {
    var rk = r.ranking || {};
    var cands = rk.candidates || [];
    var max = 0;
    cands.forEach(function (c) {
      var sum = 0;
      Object.keys(c.contributions || {}).forEach(function (k) { sum += Number(c.contributions[k]) || 0; });
      if (sum > max) max = sum;
    });
    var table = el('table', 'grid ranking');
    var head = add(add(table, el('thead')), el('tr'));
    ['#', 'Candidate', 'Similarity', 'Eligible', 'Reason', 'Contributions (weight in common)'].forEach(function (t) {
      add(head, el('th', null, t));
    });
    var body = add(table, el('tbody'));
    cands.forEach(function (c, i) {
      var selected = rk.selected && c.name === rk.selected;
      var tr = add(body, el('tr', selected ? 'selected' : (c.eligible ? '' : 'ineligible')));
      tr.dataset.candidate = c.name;
      add(tr, el('td', 'rank', String(i + 1)));
      var name = add(tr, el('td', 'name', c.name));
      if (selected) add(name, badge('\u2713 selected', 'ok'));
      var sc = add(tr, el('td', 'score'));
      add(sc, el('span', 'num', fmtScore(c.score)));
      add(sc, scoreBar(c.score, typeof rk.threshold === 'number' ? rk.threshold : threshold, c.eligible));
      add(tr, el('td', null, c.eligible ? 'yes' : 'no'));
      add(tr, el('td', 'reason', c.reason || ''));
      add(add(tr, el('td')), contributionBars(c.contributions, max));
    });
    if (!cands.length) {
      var tr = add(body, el('tr'));
      var td = add(tr, el('td', 'empty', 'No candidates.'));
      td.colSpan = 6;
    }
    return table;
  }

  // What a replacement changes of the member it was built from, in the
  // words `kvrecover score` prints (sim/replica.c writes both): its name,
  // the member, then one line per change. The controller keeps a bounded
  // list per recovery (reconcile/recover.h) and counts what it cut.
  function renderChanges(r) {
    var box = el('div', 'changes');
    var h = add(box, el('p', 'facts changes-head'));
    add(h, el('span', null, 'replacement '));
    add(h, el('span', 'name replacement', r.replacement));
    add(h, el('span', null, ', built from '));
    add(h, el('span', 'name from', r.template));
    add(h, el('span', null, '\'s data.vm:'));
    if (!Array.isArray(r.changes)) {
      add(box, el('p', 'empty', 'What it changes is not known to this controller process ' +
        '(another process built it, or this one restarted since); `kvrecover score` shows it.'));
      return box;
    }
    var list = add(box, el('ul', 'change-list'));
    r.changes.forEach(function (c) {
      var li = add(list, el('li', 'change', c && c.text));
      if (c && c.op) li.dataset.op = String(c.op);
      if (c && c.path) li.dataset.path = String(c.path);
    });
    if (!r.changes.length) add(box, el('p', 'empty', '(nothing: the member\'s VirtualMachine is used as it is)'));
    if (r.changesOmitted > 0) {
      add(box, el('p', 'more', '\u2026 and ' + r.changesOmitted + ' more (the controller keeps the first ' +
        r.changes.length + '; `kvrecover score` lists every one)'));
    }
    return box;
  }

  function renderRecoveries(p) {
    var sec = el('section', 'recoveries');
    var recs = (p.recoveries || []).slice().sort(function (a, b) {
      return String(b.time || '').localeCompare(String(a.time || ''));
    });
    add(sec, el('h3', null, 'Recent failures (' + recs.length + ')'));
    if (!recs.length) add(sec, el('p', 'empty', 'No failures seen yet.'));
    recs.forEach(function (r) {
      var card = add(sec, el('article', 'recovery'));
      card.dataset.failed = r.failed;
      var h = add(card, el('h4'));
      add(h, el('span', 'name failed', r.failed));
      add(h, el('span', 'arrow', ' failed \u2192 '));
      if (r.template) {
        add(h, el('span', 'name', r.template));
        add(h, el('span', 'num', ' ' + fmtScore(r.score)));
      } else {
        add(h, el('span', 'none', 'no eligible substitute'));
      }
      var dl = add(card, el('p', 'facts'));
      add(dl, badge(r.decision || 'unknown', DECISION_CLASS[r.decision] || 'info'));
      if (r.replacement) add(dl, el('span', null, 'replacement VM ' + r.replacement));
      add(dl, el('span', null, 'at ' + fmtTime(r.time)));
      if (r.vmiUid) add(dl, el('span', 'uid', 'VMI ' + r.vmiUid));
      if (r.replacement && r.template) add(card, renderChanges(r));
      var rk = r.ranking || {};
      add(card, el('p', 'facts', 'Ranking: ' + (rk.mode || p.mode || '') + ', threshold ' +
        fmtNum(typeof rk.threshold === 'number' ? rk.threshold : p.threshold)));
      add(card, renderRanking(r, p.threshold));
    });
    return sec;
  }

  // status.incidents' states (reconcile/status.c), in the words a user
  // reads, and the order the table lists them in: what needs a look first.
  var INCIDENT = {
    Blocked: { label: 'blocked', cls: 'bad', rank: 0 },
    Recovering: { label: 'recovering', cls: 'info', rank: 1 },
    Halted: { label: 'recovering (halted, replacement not seen yet)', cls: 'info', rank: 2 },
    Waiting: { label: 'waiting for trigger', cls: 'warn', rank: 3 },
    Restarting: { label: 'restarting', cls: 'warn', rank: 4 },
    Recovered: { label: 'recovered', cls: 'ok', rank: 5 }
  };

  // health's verdicts (reconcile/health.c) under which KubeVirt itself is
  // still bringing the VM back.
  var KUBEVIRT_RETRIES = { Restarting: 1, CrashLooping: 1, Starting: 1 };

  function incidentKind(i) {
    var k = INCIDENT[i.state] || { label: String(i.state || 'unknown'), cls: 'info', rank: 9 };
    if (i.state !== 'Waiting' && i.state !== 'Restarting') return k;
    // what the user must see first: a lost host; else that KubeVirt is still
    // restarting it (a crash loop waiting for RestartTimeout included: the
    // countdown says when kvrecover steps in)
    if (i.reason === 'NodeLost') return { label: 'node lost', cls: 'bad', rank: k.rank };
    if (KUBEVIRT_RETRIES[i.reason] === 1) return INCIDENT.Restarting;
    return k;
  }

  function fmtDuration(sec) {
    sec = Math.max(0, Math.ceil(sec));
    var h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
    if (h) return h + 'h ' + m + 'm ' + s + 's';
    if (m) return m + 'm ' + s + 's';
    return s + 's';
  }

  // Seconds until a pending trigger fires, on the controller's clock; null
  // when none is pending.
  function secondsLeft(i) {
    var at = i.triggerAt ? new Date(i.triggerAt).getTime() : NaN;
    if (!isNaN(at)) return (at - (Date.now() + skewMs)) / 1000;
    return typeof i.triggerInSeconds === 'number' && isFinite(i.triggerInSeconds) ? i.triggerInSeconds : null;
  }

  function countdownText(i) {
    var left = secondsLeft(i);
    if (left === null) return '\u2014';
    return left > 0 ? 'in ' + fmtDuration(left) : 'due now';
  }

  // The StormHold condition's facts: how many are down against the limit.
  function stormBanner(p) {
    if (typeof p.down !== 'number' || typeof p.stormLimit !== 'number') return null;
    var of = typeof p.protectedCount === 'number' ? ' of ' + p.protectedCount : '';
    var b;
    if (p.stormHold) {
      b = el('div', 'storm hold');
      add(b, badge('StormHold', 'bad'));
      add(b, el('span', 'msg', p.down + of + ' protected VMs are down, more than the storm limit (' +
        p.stormLimit + ') allows: kvrecover replaces none of them until fewer are down or ' +
        'spec.stormLimit is raised.'));
    } else {
      b = el('div', 'storm');
      add(b, el('span', 'msg', p.down + of + ' protected VMs down; the storm limit is ' + p.stormLimit + '.'));
    }
    if (p.blocked) add(b, badge(p.blocked + ' blocked', 'bad'));
    return b;
  }

  function renderIncidents(p) {
    var sec = el('section', 'incidents');
    var list = (p.incidents || []).slice().sort(function (a, b) {
      var d = incidentKind(a).rank - incidentKind(b).rank;
      return d || String(a.vm).localeCompare(String(b.vm));
    });
    add(sec, el('h3', null, 'Incidents (' + list.length + ')'));
    var banner = stormBanner(p);
    if (banner) add(sec, banner);
    if (!list.length) {
      add(sec, el('p', 'empty', 'No incident: every protected VM runs or was never meant to.'));
      return sec;
    }
    var table = add(sec, el('table', 'grid incidents'));
    var head = add(add(table, el('thead')), el('tr'));
    ['VM', 'State', 'Trigger', 'Since', 'Fires', 'Reason', 'Message', 'Replacement'].forEach(function (t) {
      add(head, el('th', null, t));
    });
    var body = add(table, el('tbody'));
    list.forEach(function (i) {
      var k = incidentKind(i);
      var tr = add(body, el('tr', 'incident ' + k.cls));
      tr.dataset.vm = i.vm;
      tr.dataset.state = i.state;
      add(tr, el('td', 'name', i.vm));
      add(add(tr, el('td', 'state')), badge(k.label, k.cls));
      add(tr, el('td', 'trigger', i.trigger || '\u2014'));
      add(tr, el('td', 'since', fmtTime(i.since)));
      var left = add(tr, el('td', 'countdown', countdownText(i)));
      if (i.triggerAt) {
        left.title = 'at ' + fmtTime(i.triggerAt);
        countdowns.push({ cell: left, incident: i });
      }
      var reason = add(tr, el('td', 'reason'));
      if (i.reason) add(reason, badge(i.reason, i.state === 'Blocked' ? 'bad' : ''));
      var msg = add(tr, el('td', 'msg', i.detail || ''));
      if (i.blockedSince) add(msg, el('span', 'when', ' (blocked since ' + fmtTime(i.blockedSince) + ')'));
      var rep = add(tr, el('td', 'replacement'));
      if (i.replacement) add(rep, el('span', 'name', i.replacement));
      if (i.template) add(rep, el('span', 'from', ' from ' + i.template));
      if (!i.replacement && !i.template) rep.textContent = '\u2014';
    });
    var more = (p.incidentCount || 0) - list.filter(function (i) { return i.state !== 'Recovered'; }).length;
    if (more > 0) add(sec, el('p', 'empty', more + ' more not listed.'));
    return sec;
  }

  // Once a second: the countdowns move without a new state.
  function tick() {
    countdowns.forEach(function (c) { c.cell.textContent = countdownText(c.incident); });
  }

  function renderPolicy(p) {
    var sec = el('section', 'policy');
    sec.dataset.policy = (p.namespace || '') + '/' + (p.name || '');
    var h = add(sec, el('h2'));
    add(h, el('span', 'name', (p.namespace || '') + '/' + (p.name || '')));
    var tags = add(sec, el('p', 'tags'));
    add(tags, badge(p.ready ? 'Ready' : 'Not ready', p.ready ? 'ok' : 'bad', p.readyMessage || ''));
    if (!p.ready && p.readyMessage) add(tags, el('span', 'msg', p.readyMessage));
    add(tags, badge('mode ' + (p.mode || '')));
    add(tags, badge('threshold ' + fmtNum(p.threshold)));
    add(tags, badge('action ' + (p.action || ''), p.action === 'DryRun' ? 'info' : ''));
    add(sec, renderIncidents(p));
    add(sec, renderMembers(p));
    add(sec, renderProtected(p));
    add(sec, renderRecoveries(p));
    return sec;
  }

  function render() {
    var main = document.getElementById('policies');
    var frag = document.createDocumentFragment();
    var policies = (state && state.policies) || [];
    countdowns = [];
    policies.forEach(function (p) { frag.appendChild(renderPolicy(p)); });
    if (!policies.length) frag.appendChild(el('p', 'empty', state ? 'No RecoveryPolicy yet.' : 'Waiting for the controller\u2026'));
    main.replaceChildren(frag);
    document.getElementById('generated').textContent = fmtTime(state && state.generatedAt);
    var leader = document.getElementById('leader');
    if (state && typeof state.leader === 'boolean') {
      leader.textContent = state.leader ? 'leader' : 'standby';
      leader.className = 'leader ' + (state.leader ? 'is-leader' : 'is-standby');
    } else {
      leader.textContent = state && state.leader ? String(state.leader) : '';
    }
    document.getElementById('updates').textContent = String(updates);
    document.body.dataset.updates = String(updates);
  }

  function accept(text) {
    try {
      state = JSON.parse(text);
    } catch (e) {
      return;
    }
    updates++;
    var gen = state && state.generatedAt ? new Date(state.generatedAt).getTime() : NaN;
    skewMs = isNaN(gen) ? 0 : gen - Date.now();
    render();
  }

  function setConn(up, text) {
    var c = document.getElementById('conn');
    c.textContent = text;
    c.className = 'conn ' + (up ? 'conn-up' : 'conn-down');
  }

  function connect() {
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host +
      location.pathname.replace(/[^/]*$/, '') + 'ws';
    var ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      setTimeout(connect, retryMs);
      return;
    }
    ws.onopen = function () {
      retryMs = 1000;
      setConn(true, 'live');
    };
    ws.onmessage = function (ev) {
      accept(ev.data);
    };
    ws.onclose = function () {
      setConn(false, 'reconnecting in ' + Math.round(retryMs / 1000) + 's');
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    };
  }

  document.addEventListener('DOMContentLoaded', function () {
    render();
    connect();
    setInterval(tick, 1000);
  });
})();
