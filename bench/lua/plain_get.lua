-- GET the URL given to wrk, no credentials.
function init(args) end
