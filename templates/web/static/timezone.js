// The sign-up form's hidden `timezone` field: the reader's IANA zone as the browser knows it, so that
// the issue arrives at breakfast where they are. Without script the field stays empty and the
// newsletter's zone applies; the server checks the value against the zoneinfo database.
(function () {
  var field = document.getElementById("timezone");
  if (!field || typeof Intl === "undefined" || !Intl.DateTimeFormat) {
    return;
  }
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (e) {
    field.value = "";
  }
})();
