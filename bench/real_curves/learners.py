"""The scikit-learn learners of the real-curve corpus, by name, and the group each belongs to."""

from __future__ import annotations

import warnings

# name -> group; every one is a plain scikit-learn classifier (see make_learner)
LEARNERS = {
    "logreg": "linear", "ridge": "linear", "perceptron": "linear", "passive_aggressive": "linear",
    "sgd_hinge": "linear", "sgd_log": "linear", "linear_svc": "svm",
    "svc_rbf": "svm", "svc_poly": "svm", "svc_sigmoid": "svm",
    "tree": "tree", "bagging": "ensemble", "forest": "ensemble", "extra_trees": "ensemble",
    "gradient_boosting": "boosting", "hist_gb": "boosting", "adaboost": "boosting",
    "gaussian_nb": "naive_bayes", "bernoulli_nb": "naive_bayes", "multinomial_nb": "naive_bayes",
    "lda": "discriminant", "qda": "discriminant", "knn": "neighbours", "mlp": "mlp",
}
# heads on frozen CNN features (the transfer-learning case): cheap ones
HEADS = ("logreg", "linear_svc", "ridge", "knn", "lda", "gaussian_nb", "mlp", "forest", "svc_rbf", "sgd_log",
         "perceptron", "qda", "extra_trees", "hist_gb")


def group_of(learner: str) -> str:
    return "cnn" if learner.startswith("cnn") else LEARNERS[learner]


def make_learner(name: str, n: int, seed: int):
    """A fresh classifier; inputs are standardised (MinMax for the multinomial NB)."""
    from sklearn import ensemble as en
    from sklearn import linear_model as lm
    from sklearn import naive_bayes as nb
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler
    from sklearn.svm import SVC, LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    warnings.filterwarnings("ignore")
    models = {
        "logreg": lambda: lm.LogisticRegression(max_iter=500),
        "ridge": lambda: lm.RidgeClassifier(),
        "perceptron": lambda: lm.Perceptron(random_state=seed),
        "passive_aggressive": lambda: lm.SGDClassifier(loss="hinge", penalty=None, learning_rate="pa1", eta0=1.0,
                                                       random_state=seed),
        "sgd_hinge": lambda: lm.SGDClassifier(loss="hinge", random_state=seed),
        "sgd_log": lambda: lm.SGDClassifier(loss="log_loss", random_state=seed),
        "linear_svc": lambda: LinearSVC(max_iter=3000),
        "svc_rbf": lambda: SVC(kernel="rbf"),
        "svc_poly": lambda: SVC(kernel="poly", degree=3),
        "svc_sigmoid": lambda: SVC(kernel="sigmoid"),
        "tree": lambda: DecisionTreeClassifier(random_state=seed),
        "bagging": lambda: en.BaggingClassifier(n_estimators=20, random_state=seed),
        "forest": lambda: en.RandomForestClassifier(n_estimators=50, random_state=seed, n_jobs=1),
        "extra_trees": lambda: en.ExtraTreesClassifier(n_estimators=50, random_state=seed, n_jobs=1),
        "gradient_boosting": lambda: en.GradientBoostingClassifier(n_estimators=50, random_state=seed),
        "hist_gb": lambda: en.HistGradientBoostingClassifier(max_iter=50, random_state=seed),
        "adaboost": lambda: en.AdaBoostClassifier(n_estimators=50, random_state=seed),
        "gaussian_nb": lambda: nb.GaussianNB(),
        "bernoulli_nb": lambda: nb.BernoulliNB(),
        "multinomial_nb": lambda: nb.MultinomialNB(),
        "lda": lambda: LinearDiscriminantAnalysis(),
        "qda": lambda: QuadraticDiscriminantAnalysis(reg_param=0.1),
        "knn": lambda: KNeighborsClassifier(n_neighbors=min(5, n)),
        "mlp": lambda: MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=seed),
    }
    scaler = MinMaxScaler() if name == "multinomial_nb" else StandardScaler()
    return make_pipeline(scaler, models[name]())
