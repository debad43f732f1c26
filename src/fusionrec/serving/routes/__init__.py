"""HTTP routes, one module per area; `fusionrec.serving.app` includes them."""
