// gigql's GraphiQL page (server/graphiql/page.py): starts GraphiQL on the packaged
// React, GraphiQL and explorer plugin loaded before this file. A file of its own, not an
// inline script, so that the page's Content-Security-Policy can allow 'self' alone.
//
// Queries and mutations are POSTed to this page's own URL; subscriptions go over a
// websocket to the same URL (graphql-transport-ws, with the graphql-ws client bundled in
// GraphiQL). GraphiQL's createFetcher sends the headers of its Headers editor with each
// HTTP request and, for a subscription, as the payload of `connection_init`: gigql reads
// the access token from `Authorization` in both. GraphiQL keeps its tabs and history in
// sessionStorage, not localStorage: an access token does not outlive the tab.
(function () {
  "use strict";

  const WELCOME = `# gigql's GraphiQL (served by gigql: no CDN).
#
# Signed in? Put your access token in Headers:
#
#   {"Authorization": "Bearer <accessToken>"}
#
# It goes with every query and mutation, and in
# connection_init when a subscription opens its
# websocket. Run: Ctrl-Enter. Complete: Ctrl-Space.
# A link with ?q=... opens that query.

{
  __typename
}
`;

  const endpoint = window.location.origin + window.location.pathname;
  const websocket = new URL(endpoint);
  websocket.protocol = websocket.protocol === "https:" ? "wss:" : "ws:";

  const parameters = new URLSearchParams(window.location.search);
  const send = GraphiQL.createFetcher({
    url: endpoint,
    subscriptionUrl: websocket.toString(),
  });

  // createFetcher sends a subscription over the websocket when the document GraphiQL
  // hands it says so, but that is the editor's last parse, made 100 ms after typing
  // stops: a subscription pasted and run at once would be POSTed (and refused). The
  // document is parsed here from the text actually sent.
  function fetcher(request, options) {
    let documentAST;
    try {
      documentAST = GraphiQL.GraphQL.parse(request.query);
    } catch (error) {
      documentAST = undefined; // the server answers with the syntax error
    }
    return send(request, Object.assign({}, options, { documentAST: documentAST }));
  }

  function Page() {
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: WELCOME,
      // Not ?query=, which asks /graphql to run the query rather than show this page.
      query: parameters.get("q") || undefined,
      variables: parameters.get("variables") || undefined,
      plugins: [GraphiQLPluginExplorer.explorerPlugin()],
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      // GraphiQL's history keeps each run's headers whatever shouldPersistHeaders says:
      // in the tab's own storage, a pasted token goes when the tab does.
      storage: window.sessionStorage,
      inputValueDeprecation: true,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(Page));
})();
