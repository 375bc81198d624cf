"""XEP-0060 Publish-Subscribe: the node engine shared by PEP (``pep``) and a pubsub service.

- ``config``: node configuration, its data forms and publish-options preconditions (§7.1.5, §8.2);
- ``node``: a node's items, publishers and access, sans-IO;
- ``store``: nodes persisted through the generic stores, keyed by owner (an account, or a service's domain);
- ``protocol``: the ``<pubsub/>`` requests and the ``<event/>`` notifications as elements, and the errors.
"""
