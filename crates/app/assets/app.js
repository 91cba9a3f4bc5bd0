// MedRec EHR manager: live updates over server-sent events. A new chain event is added
// to the page (and announced to screen readers) without reloading.
// Long actions (a transaction waits for its block, a refresh fetches every provider):
// the form says what is happening while the next page is on its way, and a second
// submission of the same form is ignored.
(function () {
  'use strict';
  document.addEventListener('submit', function (event) {
    var form = event.target;
    var busy = form.getAttribute && form.getAttribute('data-busy');
    if (!busy) { return; }
    if (form.getAttribute('aria-busy') === 'true') { event.preventDefault(); return; }
    form.setAttribute('aria-busy', 'true');
    var note = document.createElement('p');
    note.className = 'busy';
    note.setAttribute('role', 'status');
    note.textContent = busy;
    form.appendChild(note);
  });
})();

(function () {
  'use strict';
  // Live updates belong to the unlocked pages (those with the menu), not to unlock.
  if (!window.EventSource || !document.querySelector('nav[aria-label="Main"]')) { return; }
  var source = new EventSource('/events');
  var status = document.getElementById('live-status');

  function announce(text) {
    if (status) { status.textContent = text; }
  }

  function bumpInbox(title) {
    if (title !== 'New relationship' && title !== 'Update pending') { return; }
    var badge = document.getElementById('inbox-count');
    if (!badge) { return; }
    var n = parseInt(badge.textContent, 10) || 0;
    badge.textContent = String(n + 1);
    badge.hidden = false;
  }

  source.addEventListener('notice', function (event) {
    var d;
    try { d = JSON.parse(event.data); } catch (e) { return; }
    var list = document.getElementById('news');
    if (list) {
      var item = document.createElement('li');
      // A break-glass opening of the emergency set stands out (see the Inbox's own).
      item.className = 'item item-new' + (d.title === 'Emergency access' ? ' kind-break-glass' : '');
      var title = document.createElement('strong');
      title.textContent = d.title;
      var text = document.createElement('span');
      text.textContent = ' ' + d.sentence;
      var block = document.createElement('span');
      block.className = 'muted';
      block.textContent = d.block ? ' (block ' + d.block + ')' : '';
      item.appendChild(title);
      item.appendChild(text);
      item.appendChild(block);
      list.insertBefore(item, list.firstChild);
      var empty = document.getElementById('news-empty');
      if (empty) { empty.hidden = true; }
    }
    bumpInbox(d.title);
    var actionable = d.title === 'New relationship' || d.title === 'Update pending';
    announce(d.title + ': ' + d.sentence + (actionable ? ' Reload the page to answer it.' : ''));
  });

  source.addEventListener('records', function (event) {
    var d;
    try { d = JSON.parse(event.data); } catch (e) { return; }
    var state = document.getElementById('records-state');
    if (state && state.getAttribute('data-refreshing')) {
      window.location.reload();
      return;
    }
    announce(d.sentence);
  });
})();
