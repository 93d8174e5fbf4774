"""`mlops demo`: the golden path on a deployed stack, the steps a user runs by hand.

    seed         the seeded transactions into the offline store (a Job like feast-apply)
    materialize  their features into the online store, over the window the data spans
    train        the training workflow registered with the stack's image, run on Flyte
    serve        the InferenceService the training deployed, waited for until Ready
    score        transactions scored through its transformer

target.py checks what every step needs before anything is made; data.py holds the seeded
data's parameters, which the workload tests share; jobs.py, training.py and serving.py run the
steps; commands.py is the `mlops demo` command group.
"""
