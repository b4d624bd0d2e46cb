// Swagger UI over our own schema; same-origin requests carry the session and its CSRF token.
(function () {
  const root = document.getElementById("swagger-ui");
  const csrf = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  window.ui = SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    requestInterceptor: (request) => {
      if (csrf) request.headers["X-CSRFToken"] = csrf.split("=")[1];
      return request;
    },
  });
})();
