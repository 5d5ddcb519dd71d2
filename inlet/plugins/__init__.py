"""inlet's runner of Rucio's daemon functions (``inlet daemon conveyor|judge-evaluator|hermes``).

What Rucio itself loads (the gfal2 transfertool, the S3 protocol, the metadata plugin) is in
``rucio_inlet`` (rucio-inlet/); these modules only start Rucio's daemon code in inlet's process.
"""
